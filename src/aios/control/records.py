"""Translations between database rows and what the scheduler and executors see, and
the event log. Every state change goes through :func:`record`, in the transaction that
makes the change."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from aios.executors.base import Handle, LaunchSpec
from aios.resources import Allocation, Resources
from aios.scheduler import Job, JobKind, Queue
from aios.store import EventRow, JobRow, QueueRow

__all__ = [
    "FUNCTION_FILE",
    "allocation_from_json",
    "allocation_to_json",
    "handle_from_json",
    "handle_to_json",
    "launch_spec",
    "queue_from_row",
    "record",
    "scheduler_job",
    "write_events",
]

FUNCTION_FILE = "function.pkl"
EVENTS = "aios.events"


def record(
    session: Session,
    now: float,
    kind: str,
    message: str,
    job_id: int | None = None,
    **data: Any,
) -> None:
    """Adds one line to the event log, in ``session``'s transaction: lines are kept
    on the session and written together by :func:`write_events` before it commits."""
    event = {"time": now, "job_id": job_id, "kind": kind, "message": message, "data": data}
    session.info.setdefault(EVENTS, []).append(event)


def write_events(session: Session) -> None:
    """Inserts the event lines :func:`record` kept, in one statement."""
    events = session.info.pop(EVENTS, None)
    if events:
        session.execute(insert(EventRow), events)


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


def job_dir(home: Path, job_id: int) -> Path:
    return home / "jobs" / str(job_id)


def log_path(home: Path, job_id: int, stream: str, replica: int = 0) -> Path:
    suffix = "" if replica == 0 else f".{replica}"
    return job_dir(home, job_id) / f"{stream}{suffix}.log"


def launch_spec(
    home: Path, row: JobRow, attempt: int, replica: int, allocation: Allocation
) -> LaunchSpec:
    """What the executor needs to start replica ``replica`` of ``row``'s attempt."""
    workdir = job_dir(home, row.id)
    if row.command:
        command: list[str] = [str(arg) for arg in row.command]
    else:
        command = [sys.executable, "-m", "aios.control.function", FUNCTION_FILE]
    env = {str(k): str(v) for k, v in (row.env or {}).items()}
    env.setdefault("AIOS_REPLICAS", str(row.replicas))
    return LaunchSpec(
        job_id=str(row.id),
        attempt=attempt,
        replica=replica,
        command=command,
        shell=row.shell,
        workdir=workdir,
        stdout=log_path(home, row.id, "stdout", replica),
        stderr=log_path(home, row.id, "stderr", replica),
        checkpoint_dir=workdir / "checkpoint",
        env=env,
        cores=allocation.cores,
        gpus=allocation.gpus,
        memory=allocation.memory,
        time_limit=row.time_limit,
        grace=row.grace,
        node=allocation.node,
    )


def prepare_workdir(home: Path, job_id: int) -> None:
    path = job_dir(home, job_id)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass  # a retry, or a function job whose payload was written at submission
    else:
        os.mkdir(path / "checkpoint", 0o700)
        return
    (path / "checkpoint").mkdir(exist_ok=True)
