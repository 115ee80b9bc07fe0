"""The Jobs page's table: one page of jobs, filtered and sorted by the server, with the
total, so that a history of 100,000 jobs is paged through and never shipped whole.

The same visibility as ``GET /api/v1/jobs``: a tenant's own queue, an admin all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from aios.control.auth import Principal
from aios.store import Database, JobRow

__all__ = ["JobPage", "JobQuery", "JobRowView", "SortKey", "job_page"]

SortKey = Literal[
    "id", "name", "state", "queue", "owner", "cpus", "memory", "gpus", "priority", "wait"
]


class JobRowView(BaseModel):
    """One row of the table; ``wait`` is seconds from entering the queue to starting
    (to now for a job still queued)."""

    id: int
    name: str
    owner: str
    queue: str
    state: str
    cpus: float
    memory: int
    gpus: int
    gpu_kind: str | None
    priority: int
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    wait: float
    message: str


class JobPage(BaseModel):
    total: int
    offset: int
    jobs: list[JobRowView]


@dataclass(frozen=True, slots=True)
class JobQuery:
    state: str | None = None
    queue: str | None = None
    owner: str | None = None
    name: str | None = None
    sort: SortKey = "id"
    descending: bool = True
    limit: int = 50
    offset: int = 0


def _sort_column(key: SortKey, now: float) -> ColumnElement[Any]:
    if key == "wait":
        return func.coalesce(JobRow.started_at, now) - JobRow.queued_at
    columns: dict[str, Any] = {
        "id": JobRow.id,
        "name": JobRow.name,
        "state": JobRow.state,
        "queue": JobRow.queue,
        "owner": JobRow.owner,
        "cpus": JobRow.cpu,
        "memory": JobRow.memory,
        "gpus": JobRow.gpus,
        "priority": JobRow.priority,
    }
    column: ColumnElement[Any] = columns[key]
    return column


def _filtered(query: Select[Any], user: Principal, want: JobQuery) -> Select[Any]:
    if not user.admin:
        query = query.where(JobRow.queue == user.tenant)
    if want.state is not None:
        query = query.where(JobRow.state == want.state)
    if want.queue is not None:
        query = query.where(JobRow.queue == want.queue)
    if want.owner is not None:
        query = query.where(JobRow.owner == want.owner)
    if want.name:
        escaped = want.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(JobRow.name.like(f"%{escaped}%", escape="\\"))
    return query


def job_page(db: Database, user: Principal, want: JobQuery, now: float | None = None) -> JobPage:
    """The jobs ``want`` asks for, one page of them, with how many match in all."""
    now = time.time() if now is None else now
    column = _sort_column(want.sort, now)
    order = [column.desc() if want.descending else column.asc()]
    if want.sort != "id":
        order.append(JobRow.id.desc())  # ties in a stable order, newest first
    rows_query = _filtered(select(JobRow), user, want).order_by(*order)
    count_query = _filtered(select(JobRow), user, want).with_only_columns(func.count())
    with db.sessions() as session:
        total = int(session.scalar(count_query) or 0)
        rows: Sequence[JobRow] = session.scalars(
            rows_query.limit(want.limit).offset(want.offset)
        ).all()
        jobs = [
            JobRowView(
                id=row.id,
                name=row.name,
                owner=row.owner,
                queue=row.queue,
                state=row.state,
                cpus=row.cpu / 1000,
                memory=row.memory,
                gpus=row.gpus * row.replicas,
                gpu_kind=row.gpu_kind,
                priority=row.priority,
                submitted_at=row.submitted_at,
                started_at=row.started_at,
                finished_at=row.finished_at,
                wait=max((row.started_at or now) - row.queued_at, 0.0),
                message=row.message,
            )
            for row in rows
        ]
    return JobPage(total=total, offset=want.offset, jobs=jobs)
