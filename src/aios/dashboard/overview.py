"""What the Overview page shows: capacity against allocation per resource (now, and
over the last hour from the jobs' attempts), GPUs by kind, queues against their quota,
jobs by state and the scheduler's cycle time, in one response.

Jobs and allocation history are the caller's own tenant's (everything for an admin),
by the same rule as ``GET /api/v1/jobs``; capacity is the cluster's, as ``/nodes``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel
from sqlalchemy import func, or_, select

from aios.control.auth import Principal
from aios.control.metrics import ControlMetrics
from aios.control.ops import ControlOps
from aios.control.reconciler import Reconciler
from aios.control.specs import NodeView, QueueView
from aios.store import AttemptRow, Database, JobRow

__all__ = ["HISTORY_POINTS", "Overview", "allocation_history", "overview"]

HISTORY_POINTS = 60
RESOURCES = ("cpu", "memory", "gpu")


class ResourceUse(BaseModel):
    """``cpu`` in millicores, ``memory`` in bytes, ``gpu`` in devices."""

    resource: str
    capacity: int
    allocated: int


class GpuKindUse(BaseModel):
    kind: str
    total: int
    busy: int


class AllocationSample(BaseModel):
    time: float
    cpu: int
    memory: int
    gpu: int


class SchedulerStats(BaseModel):
    policy: str
    cycles: int
    last_cycle_seconds: float
    mean_cycle_seconds: float


class Overview(BaseModel):
    time: float
    resources: list[ResourceUse]
    gpu_kinds: list[GpuKindUse]
    queues: list[QueueView]
    jobs_by_state: dict[str, int]
    history: list[AllocationSample]
    scheduler: SchedulerStats


@dataclass(frozen=True, slots=True)
class Held:
    """What one attempt held from ``start`` until ``end`` (None: still holds it)."""

    start: float
    end: float | None
    cpu: int
    memory: int
    gpu: int


def allocation_history(
    held: Sequence[Held], start: float, end: float, points: int = HISTORY_POINTS
) -> list[AllocationSample]:
    """Resources held at ``points`` evenly spaced instants of ``[start, end]``."""
    samples = []
    step = (end - start) / max(points - 1, 1)
    for i in range(points):
        at = start + i * step
        live = [h for h in held if h.start <= at and (h.end is None or h.end > at)]
        samples.append(
            AllocationSample(
                time=at,
                cpu=sum(h.cpu for h in live),
                memory=sum(h.memory for h in live),
                gpu=sum(h.gpu for h in live),
            )
        )
    return samples


def _held(db: Database, user: Principal, since: float) -> list[Held]:
    query = (
        select(AttemptRow.started_at, AttemptRow.finished_at, AttemptRow.allocations, JobRow)
        .join(JobRow, JobRow.id == AttemptRow.job_id)
        .where(or_(AttemptRow.finished_at.is_(None), AttemptRow.finished_at >= since))
    )
    if not user.admin:
        query = query.where(JobRow.queue == user.tenant)
    with db.sessions() as session:
        return [
            Held(
                start,
                end,
                job.cpu * max(len(allocations), 1),
                job.memory * max(len(allocations), 1),
                sum(len(a["gpus"]) for a in allocations),
            )
            for start, end, allocations, job in session.execute(query)
        ]


def _jobs_by_state(db: Database, user: Principal) -> dict[str, int]:
    query = select(JobRow.state, func.count()).group_by(JobRow.state)
    if not user.admin:
        query = query.where(JobRow.queue == user.tenant)
    with db.sessions() as session:
        return {state: int(count) for state, count in session.execute(query)}


def _gpu_kinds(nodes: Sequence[NodeView]) -> list[GpuKindUse]:
    kinds: dict[str, list[int]] = {}
    for node in nodes:
        for gpu in node.gpus:
            total_busy = kinds.setdefault(gpu.model or "unknown", [0, 0])
            total_busy[0] += 1
            total_busy[1] += gpu.job_id is not None
    return [GpuKindUse(kind=k, total=t, busy=b) for k, (t, b) in sorted(kinds.items())]


def _scheduler(reconciler: Reconciler, metrics: ControlMetrics) -> SchedulerStats:
    total = count = 0.0
    for family in metrics.cycle_seconds.collect():
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    view = reconciler.view()
    return SchedulerStats(
        policy=view.policy,
        cycles=view.cycles,
        last_cycle_seconds=view.last_cycle_seconds,
        mean_cycle_seconds=total / count if count else 0.0,
    )


def overview(
    ops: ControlOps,
    db: Database,
    metrics: ControlMetrics,
    user: Principal,
    window: float = 3600.0,
    now: float | None = None,
) -> Overview:
    """The Overview page's numbers for ``user``; history covers the last ``window`` s."""
    now = time.time() if now is None else now
    nodes = ops.nodes()
    resources = [
        ResourceUse(
            resource=name,
            capacity=sum(n.allocatable.get(name, 0) for n in nodes),
            allocated=sum(n.allocated.get(name, 0) for n in nodes),
        )
        for name in RESOURCES
    ]
    return Overview(
        time=now,
        resources=resources,
        gpu_kinds=_gpu_kinds(nodes),
        queues=ops.queues(user),
        jobs_by_state=_jobs_by_state(db, user),
        history=allocation_history(_held(db, user, now - window), now - window, now),
        scheduler=_scheduler(ops.reconciler, metrics),
    )
