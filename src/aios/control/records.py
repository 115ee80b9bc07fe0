"""Translations between database rows and what the scheduler and executors see, the
event log, and the loop's row changes. Every state change goes through :func:`record`,
in the transaction that makes the change."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Insert, Table, Update, bindparam, insert, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from aios.executors.base import Handle
from aios.resources import Allocation, Resources
from aios.scheduler import Job, JobKind, PreemptionCost, Queue
from aios.store import AttemptRow, EventRow, JobRow, QueueRow

__all__ = [
    "FUNCTION_FILE",
    "QUEUED",
    "RowChanges",
    "allocation_from_json",
    "allocation_to_json",
    "handle_from_json",
    "handle_to_json",
    "job_dir",
    "log_path",
    "preemption_cost",
    "queue_from_row",
    "record",
    "scheduler_job",
    "write_events",
]

FUNCTION_FILE = "function.pkl"
EVENTS = "aios.events"
QUEUED = "queued"
"""The state of a job waiting for the scheduler (or for its retry backoff)."""


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
        _execute_many(session.connection(), _INSERT_EVENTS, events)


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
    (one ``executemany`` per table) where the ORM's unit of work would cost a flush of
    each object: it is most of a job's cost at a thousand jobs a second.

    :meth:`job` and :meth:`attempt` change the object in memory as if loaded so
    (``set_committed_value``: the session sees no change to flush) and remember which
    columns changed. :meth:`write` then sets, on every changed row of a table, each
    column that changed on any of them, read from the object: one statement per table
    however the changes differ (a job that ends, one that starts, one whose process was
    just launched), where one statement per set of columns would cost a statement
    each. A column a row did not change is written with the value it already has —
    the loop is the only writer of these rows. New attempts are rows the session never
    holds. Changes are written in the order inserts, attempts, jobs, so an update
    follows its insert.
    """

    def __init__(self) -> None:
        self._new_attempts: list[dict[str, Any]] = []
        self._attempts: dict[tuple[int, int], tuple[AttemptRow, set[str]]] = {}
        self._jobs: dict[int, tuple[JobRow, set[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self._new_attempts or self._attempts or self._jobs)

    def job(self, row: JobRow, **values: Any) -> None:
        """Sets columns of ``row``, to be written by :meth:`write`."""
        for key, value in values.items():
            set_committed_value(row, key, value)
        self._jobs.setdefault(row.id, (row, set()))[1].update(values)

    def attempt(self, row: AttemptRow, **values: Any) -> None:
        """Sets columns of the attempt ``row``, to be written by :meth:`write`."""
        for key, value in values.items():
            set_committed_value(row, key, value)
        self._attempts.setdefault((row.job_id, row.number), (row, set()))[1].update(values)

    def new_attempt(self, **values: Any) -> AttemptRow:
        """A new attempt row (not held by any session), inserted by :meth:`write`."""
        self._new_attempts.append(values)
        return AttemptRow(**values)

    def write(self, session: Session) -> None:
        """Executes the changes in ``session``'s transaction, and forgets them."""
        connection = session.connection()
        if self._new_attempts:
            _execute_many(connection, _INSERT_ATTEMPTS, self._new_attempts)
        if self._attempts:
            _execute_many(
                connection, _UPDATE_ATTEMPTS, _parameters(self._attempts, ("_job", "_number"))
            )
        if self._jobs:
            _execute_many(connection, _UPDATE_JOBS, _parameters(self._jobs, ("_job",)))
        self.clear()

    def clear(self) -> None:
        self._new_attempts = []
        self._attempts = {}
        self._jobs = {}


def _parameters(
    changes: dict[Any, tuple[Any, set[str]]], id_names: tuple[str, ...]
) -> list[dict[str, Any]]:
    """One parameter set per changed row, all naming the same columns (an
    ``executemany`` needs that): every column changed on any row, as the row now has it."""
    columns: set[str] = set().union(*(keys for _, keys in changes.values()))
    parameters = []
    for key, (row, _) in changes.items():
        ids = key if isinstance(key, tuple) else (key,)
        values = dict(zip(id_names, ids, strict=True))
        for column in columns:
            values[column] = getattr(row, column)
        parameters.append(values)
    return parameters


_Plan = tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]
_PLANS: dict[tuple[Insert | Update, tuple[str, ...]], _Plan] = {}
DRIVER_SQLITE = True
"""Whether :func:`_execute_many` hands SQLite's driver the statements itself (tests
turn it off to check that both ways write the same)."""


def _execute_many(
    connection: Connection, statement: Insert | Update, parameters: list[dict[str, Any]]
) -> None:
    """Executes ``statement`` once per parameter set (all naming the same keys), in
    ``connection``'s transaction.

    On SQLite the statement goes to the driver's cursor directly, compiled once per set
    of keys with its bind processors (JSON, floats) applied here: SQLAlchemy's own
    execution costs about a tenth of a millisecond per statement, several times what
    SQLite spends, and the loop runs four of them per job. Elsewhere, and for dialects
    that do not take positional parameters, SQLAlchemy executes it."""
    dialect = connection.dialect
    if not (DRIVER_SQLITE and dialect.name == "sqlite" and dialect.paramstyle == "qmark"):
        connection.execute(statement, parameters)
        return
    keys = tuple(sorted(parameters[0]))
    plan = _PLANS.get((statement, keys))
    if plan is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        names = tuple(compiled.positiontup or ())
        plan = (
            compiled.string,
            names,
            tuple(compiled.binds[name].type.bind_processor(dialect) for name in names),
        )
        _PLANS[(statement, keys)] = plan
    sql, names, processors = plan
    rows = [
        tuple(
            value if process is None else process(value)
            for value, process in zip((values[name] for name in names), processors, strict=True)
        )
        for values in parameters
    ]
    connection.connection.cursor().executemany(sql, rows)


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


def job_dir(home: Path, job_id: int) -> Path:
    """The job's own directory: its working directory, bound into its sandbox (see
    :mod:`aios.control.launching`)."""
    return home / "jobs" / str(job_id)


def log_path(home: Path, job_id: int, stream: str, replica: int = 0) -> Path:
    suffix = "" if replica == 0 else f".{replica}"
    return job_dir(home, job_id) / f"{stream}{suffix}.log"


def prepare_workdir(home: Path, job_id: int) -> None:
    """Makes the job's directory and its checkpoint directory, each unless it exists (a
    retry, a function job whose payload was written at submission, a directory made
    ahead by :class:`~aios.control.workdirs.Workdirs`, even at the same moment)."""
    path = os.fspath(job_dir(home, job_id))
    for directory in (path, f"{path}/checkpoint"):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
