"""What the API returns about a job, and what a job's row says it was submitted as."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aios.control.specs import AttemptView, JobView, ReplicaPlace
from aios.store import AttemptRow, JobRow

__all__ = ["job_view", "spec_of"]


def job_view(row: JobRow, attempts: Sequence[AttemptRow] = ()) -> JobView:
    stopping = None
    views = []
    for attempt in attempts:
        if attempt.number == row.attempts and attempt.finished_at is None:
            stopping = attempt.stopping
        views.append(
            AttemptView(
                number=attempt.number,
                node=attempt.allocations[0]["node"] if attempt.allocations else "",
                cores=[a["cores"] for a in attempt.allocations],
                gpus=[a["gpus"] for a in attempt.allocations],
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
                exit_code=attempt.exit_code,
                reason=attempt.reason,
                message=attempt.message,
                replicas=_places(attempt),
            )
        )
    return JobView(
        id=row.id,
        name=row.name,
        owner=row.owner,
        queue=row.queue,
        state=row.state,
        kind=row.kind,
        command=[str(a) for a in row.command],
        shell=row.shell,
        cpus=row.cpu / 1000,
        memory=row.memory,
        gpus=row.gpus,
        gpu_kind=row.gpu_kind,
        replicas=row.replicas,
        priority=row.priority,
        preemptible=row.preemptible,
        restore=row.restore,
        checkpoint_every=row.checkpoint_every,
        after=[int(p) for p in row.dependencies],
        time_limit=row.time_limit,
        grace=row.grace,
        max_retries=row.max_retries,
        retries=row.retries,
        pipeline_id=row.pipeline_id,
        step=row.step,
        submitted_at=row.submitted_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        exit_code=row.exit_code,
        reason=row.reason,
        message=row.message,
        stopping=stopping,
        attempts=views,
        inputs=[str(ref) for ref in row.inputs or []],
        outputs=[str(name) for name in row.outputs or []],
        cache=row.cache,
        network=row.network,
        image=row.image,
        as_admin=row.as_admin,
    )


def spec_of(row: JobRow) -> dict[str, Any]:
    """The JobSpec fields that submit ``row``'s job again as it was (its command, not a
    function's payload, which lives in its directory), without its dependencies."""
    spec: dict[str, Any] = {
        "name": row.name,
        "cpus": f"{row.cpu}m",
        "memory": row.memory,
        "gpus": row.gpus,
        "gpu_kind": row.gpu_kind,
        "replicas": row.replicas,
        "priority": row.priority,
        "queue": row.queue,
        "env": dict(row.env or {}),
        "time_limit": row.time_limit,
        "grace": row.grace,
        "retries": row.max_retries,
        "retry_backoff": row.retry_backoff,
        "preemptible": row.preemptible,
        "restore": row.restore,
        "checkpoint_every": row.checkpoint_every,
        "inputs": list(row.inputs or []),
        "outputs": list(row.outputs or []),
        "cache": row.cache,
        "network": row.network,
        "image": row.image,
        "as_admin": row.as_admin,
    }
    if row.command:
        spec["command"] = row.command[0] if row.shell else list(row.command)
    return spec


def _places(attempt: AttemptRow) -> list[ReplicaPlace]:
    """Each replica's node (its allocation, in replica order) and pid (its handle, once
    launched)."""
    pids = {
        int(handle["replica"]): int(handle["pid"])
        for handle in attempt.handles or ()
        if int(handle.get("pid", 0)) > 0
    }
    return [
        ReplicaPlace(replica=index, node=str(allocation["node"]), pid=pids.get(index))
        for index, allocation in enumerate(attempt.allocations)
    ]
