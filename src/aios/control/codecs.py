"""Rows and JSON as the scheduler and the executors see them: a job row as a scheduler
:class:`~aios.scheduler.Job`, a queue row as a :class:`~aios.scheduler.Queue`, and the
allocation and handle of an attempt to and from the JSON its row keeps."""

from __future__ import annotations

from typing import Any

from aios.executors.base import Handle
from aios.resources import Allocation, Resources
from aios.scheduler import Job, JobKind, PreemptionCost, Queue
from aios.store import JobRow, QueueRow

__all__ = [
    "allocation_from_json",
    "allocation_to_json",
    "handle_from_json",
    "handle_to_json",
    "preemption_cost",
    "queue_from_row",
    "scheduler_job",
]


def scheduler_job(row: JobRow) -> Job:
    """The job as the scheduler sees it."""
    return Job(
        id=str(row.id),
        request=Resources(row.cpu, row.memory, row.gpus, row.gpu_kind if row.gpus else None),
        replicas=row.replicas,
        priority=row.priority,
        queue=row.queue,
        submit_time=row.submitted_at,
        time_limit=row.time_limit,
        preemptible=row.preemptible,
        dependencies=tuple(str(parent) for parent in row.dependencies),
        kind=JobKind(row.kind),
        queued_at=row.queued_at,
        attained_service=row.attained_service,
        preemption_cost=preemption_cost(row),
        name=row.name,
    )


def preemption_cost(row: JobRow) -> PreemptionCost | None:
    """What preempting ``row``'s job costs, as its spec says; None when it says nothing
    (a figure it leaves out is the default's, see :class:`PreemptionCost`)."""
    if row.restore is None and row.checkpoint_every is None:
        return None
    default = PreemptionCost()
    return PreemptionCost(
        default.restore if row.restore is None else row.restore,
        default.checkpoint_every if row.checkpoint_every is None else row.checkpoint_every or None,
    )


def queue_from_row(row: QueueRow) -> Queue:
    return Queue(
        name=row.name,
        nominal=None if row.nominal is None else {k: int(v) for k, v in row.nominal.items()},
        weight=row.weight,
        cohort=row.cohort,
        borrowing_limit={k: int(v) for k, v in (row.borrowing_limit or {}).items()},
    )


def allocation_to_json(allocation: Allocation) -> dict[str, Any]:
    return {
        "node": allocation.node,
        "cores": list(allocation.cores),
        "gpus": list(allocation.gpus),
        "memory": allocation.memory,
        "gpu_kind": allocation.gpu_kind,
        "custom": [list(pair) for pair in allocation.custom],
    }


def allocation_from_json(data: dict[str, Any]) -> Allocation:
    return Allocation(
        node=data["node"],
        cores=tuple(data["cores"]),
        gpus=tuple(data["gpus"]),
        memory=data["memory"],
        gpu_kind=data.get("gpu_kind"),
        custom=tuple((str(k), int(v)) for k, v in data.get("custom", ())),
    )


def handle_to_json(handle: Handle) -> dict[str, Any]:
    return {
        "job_id": handle.job_id,
        "attempt": handle.attempt,
        "replica": handle.replica,
        "pid": handle.pid,
        "pgid": handle.pgid,
        "started": handle.started,
        "exit_file": handle.exit_file,
        "cgroup": handle.cgroup,
    }


def handle_from_json(data: dict[str, Any]) -> Handle:
    return Handle(
        job_id=data["job_id"],
        attempt=data["attempt"],
        replica=data["replica"],
        pid=data["pid"],
        pgid=data["pgid"],
        started=data["started"],
        exit_file=data.get("exit_file", ""),
        cgroup=data.get("cgroup", ""),
    )
