"""Translations between database rows and what the scheduler and executors see, the
event log, and the loop's row changes. Every state change goes through :func:`record`,
in the transaction that makes the change."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from aios.executors.base import Handle, LaunchSpec
from aios.resources import Allocation, Resources
from aios.scheduler import Job, JobKind, Queue
from aios.store import AttemptRow, EventRow, JobRow, QueueRow

__all__ = [
    "FUNCTION_FILE",
    "RowChanges",
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
        session.connection().execute(_INSERT_EVENTS, events)


_JOBS = cast(Table, JobRow.__table__)
_ATTEMPTS = cast(Table, AttemptRow.__table__)
_INSERT_EVENTS = insert(cast(Table, EventRow.__table__))
_INSERT_ATTEMPTS = insert(_ATTEMPTS)
# Without a SET clause, an executemany sets the columns its parameters name.
_UPDATE_JOBS = update(_JOBS).where(_JOBS.c.id == bindparam("_job"))
_UPDATE_ATTEMPTS = update(_ATTEMPTS).where(
    _ATTEMPTS.c.job_id == bindparam("_job"), _ATTEMPTS.c.number == bindparam("_number")
)


class RowChanges:
    """The loop's changes to job and attempt rows, written as a few Core statements
    (one ``executemany`` per kind of change) where the ORM's unit of work would cost a
    flush of each object: it is most of a job's cost at a thousand jobs a second.

    :meth:`job` and :meth:`attempt` change the object in memory as if loaded so
    (``set_committed_value``: the session sees no change to flush) and keep the
    columns for :meth:`write`. New attempts are rows the session never holds. Changes
    are written in the order inserts, attempts, jobs, so an update follows its insert.
    """

    def __init__(self) -> None:
        self._new_attempts: list[dict[str, Any]] = []
        self._attempts: dict[tuple[int, int], dict[str, Any]] = {}
        self._jobs: dict[int, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._new_attempts or self._attempts or self._jobs)

    def job(self, row: JobRow, **values: Any) -> None:
        """Sets columns of ``row``, to be written by :meth:`write`."""
        for key, value in values.items():
            set_committed_value(row, key, value)
        self._jobs.setdefault(row.id, {}).update(values)

    def attempt(self, row: AttemptRow, **values: Any) -> None:
        """Sets columns of the attempt ``row``, to be written by :meth:`write`."""
        for key, value in values.items():
            set_committed_value(row, key, value)
        self._attempts.setdefault((row.job_id, row.number), {}).update(values)

    def new_attempt(self, **values: Any) -> AttemptRow:
        """A new attempt row (not held by any session), inserted by :meth:`write`."""
        self._new_attempts.append(values)
        return AttemptRow(**values)

    def write(self, session: Session) -> None:
        """Executes the changes in ``session``'s transaction, and forgets them."""
        connection = session.connection()
        if self._new_attempts:
            connection.execute(_INSERT_ATTEMPTS, self._new_attempts)
        for statement, changes, keys in (
            (_UPDATE_ATTEMPTS, self._attempts, ("_job", "_number")),
            (_UPDATE_JOBS, self._jobs, ("_job",)),
        ):
            # One executemany per set of columns: its parameters must share their keys.
            groups: dict[frozenset[str], list[dict[str, Any]]] = {}
            for key, values in changes.items():
                ids = key if isinstance(key, tuple) else (key,)
                groups.setdefault(frozenset(values), []).append(
                    dict(zip(keys, ids, strict=True)) | values
                )
            for parameters in groups.values():
                connection.execute(statement, parameters)
        self.clear()

    def clear(self) -> None:
        self._new_attempts = []
        self._attempts = {}
        self._jobs = {}


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
