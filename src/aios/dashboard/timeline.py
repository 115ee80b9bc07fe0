"""The Timeline page: which job held which GPUs of which node over a window, from the
jobs' attempts, with the attempts that ended by preemption marked.

A tenant sees their own queue's bars on the cluster's GPU rows (the rows are the
cluster's, as ``/nodes`` shows them); an admin sees every bar.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy import or_, select

from aios.control.auth import Principal
from aios.control.specs import NodeView
from aios.errors import InvalidInput
from aios.store import AttemptRow, Database, JobRow

__all__ = ["MAX_BARS", "GpuBar", "GpuRow", "Timeline", "timeline"]

MAX_BARS = 5000
"""Bars in one answer at most: the newest ones win when a window holds more."""


class GpuRow(BaseModel):
    node: str
    gpu: int
    model: str


class GpuBar(BaseModel):
    """Job ``job_id``'s attempt ``attempt`` on GPU ``gpu`` of ``node``; ``end`` is None
    while it runs."""

    job_id: int
    name: str
    queue: str
    attempt: int
    node: str
    gpu: int
    start: float
    end: float | None
    reason: str | None
    preempted: bool


class Timeline(BaseModel):
    start: float
    end: float
    rows: list[GpuRow]
    bars: list[GpuBar]
    truncated: bool


def timeline(
    db: Database,
    nodes: Sequence[NodeView],
    user: Principal,
    start: float | None = None,
    end: float | None = None,
    now: float | None = None,
) -> Timeline:
    """The GPU bars of ``[start, end]`` (default: the last hour up to now)."""
    now = time.time() if now is None else now
    end = now if end is None else end
    start = end - 3600.0 if start is None else start
    if end <= start:
        raise InvalidInput(f"start: {start} is not before end {end}")
    query = (
        select(AttemptRow, JobRow.name, JobRow.queue)
        .join(JobRow, JobRow.id == AttemptRow.job_id)
        .where(AttemptRow.started_at <= end)
        .where(or_(AttemptRow.finished_at.is_(None), AttemptRow.finished_at >= start))
        .where(JobRow.gpus > 0)
        .order_by(AttemptRow.started_at.desc())
    )
    if not user.admin:
        query = query.where(JobRow.queue == user.tenant)
    bars: list[GpuBar] = []
    truncated = False
    with db.sessions() as session:
        for attempt, name, queue in session.execute(query):
            for allocation in attempt.allocations:
                for gpu in allocation["gpus"]:
                    bars.append(
                        GpuBar(
                            job_id=attempt.job_id,
                            name=name,
                            queue=queue,
                            attempt=attempt.number,
                            node=allocation["node"],
                            gpu=int(gpu),
                            start=attempt.started_at,
                            end=attempt.finished_at,
                            reason=attempt.reason,
                            preempted=attempt.reason == "preempted",
                        )
                    )
            if len(bars) >= MAX_BARS:
                truncated = True
                break
    rows = [GpuRow(node=n.name, gpu=g.index, model=g.model) for n in nodes for g in n.gpus]
    return Timeline(start=start, end=end, rows=rows, bars=bars, truncated=truncated)
