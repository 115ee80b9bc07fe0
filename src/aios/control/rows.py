"""The loop's row writes: job and attempt changes as a few Core statements, and the
SQLite bypass that executes them.

The reconcile loop is the only writer of job and attempt rows once they exist (see
:mod:`aios.control.reconciler`); :class:`RowChanges` gathers what one pass changes and
writes it as one ``executemany`` per table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Connection, Insert, Table, Update, bindparam, insert, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from aios.store import AttemptRow, JobRow

__all__ = ["QUEUED", "RowChanges", "execute_many"]

QUEUED = "queued"
"""The state of a job waiting for the scheduler (or for its retry backoff)."""

_JOBS = cast(Table, JobRow.__table__)
_ATTEMPTS = cast(Table, AttemptRow.__table__)
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
            execute_many(connection, _INSERT_ATTEMPTS, self._new_attempts)
        if self._attempts:
            execute_many(
                connection, _UPDATE_ATTEMPTS, _parameters(self._attempts, ("_job", "_number"))
            )
        if self._jobs:
            execute_many(connection, _UPDATE_JOBS, _parameters(self._jobs, ("_job",)))
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
"""Whether :func:`execute_many` hands SQLite's driver the statements itself (tests
turn it off to check that both ways write the same)."""


def execute_many(
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
