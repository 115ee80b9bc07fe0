"""The loop's row changes: written as Core statements, seen at once in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from aios.control import rows as row_writes
from aios.control.events import record, write_events
from aios.control.rows import RowChanges
from aios.store import AttemptRow, Database, JobRow, sqlite_url


def _job(db: Database) -> int:
    with db.transaction() as session:
        row = JobRow(
            name="j",
            owner="admin",
            queue="default",
            state="queued",
            command=["true"],
            cpu=1000,
            memory=1 << 26,
            submitted_at=1.0,
            queued_at=1.0,
            attained_service=0.0,
            attempts=0,
            message="",
        )
        session.add(row)
        session.flush()
        return row.id


def test_changes_are_written_and_leave_nothing_for_the_orm_to_flush(tmp_path: Path) -> None:
    """Changes with different sets of columns, to jobs and a new attempt, are in the
    database after :meth:`RowChanges.write`; the session holds no pending change."""
    db = Database(sqlite_url(tmp_path / "aios.db"))
    first, second = _job(db), _job(db)
    changes = RowChanges()
    with db.sessions() as session, session.begin():
        one, two = session.get(JobRow, first), session.get(JobRow, second)
        assert one is not None and two is not None
        changes.job(one, attempts=1, state="running", started_at=2.0)
        changes.job(two, message="waits for a free core")
        attempt = changes.new_attempt(
            job_id=first, number=1, allocations=[], handles=[], started_at=2.0, message=""
        )
        changes.attempt(attempt, handles=[{"pid": 7}], started_at=2.5)
        changes.job(one, started_at=2.5)
        assert one.state == "running" and one.started_at == 2.5
        assert not session.dirty
        changes.write(session)
        assert not changes
    with db.sessions() as session:
        one, two = session.get(JobRow, first), session.get(JobRow, second)
        assert one is not None and two is not None
        assert (one.attempts, one.state, one.started_at) == (1, "running", 2.5)
        assert two.message == "waits for a free core" and two.state == "queued"
        (stored,) = session.scalars(select(AttemptRow))
        assert (stored.handles, stored.started_at) == ([{"pid": 7}], 2.5)
    db.close()


def _write_a_step(db: Database) -> list[tuple[object, ...]]:
    """One step's worth of changes (a job ends, another starts and is launched, with
    their events), written through :class:`RowChanges`; returns what the tables hold."""
    ending, starting = _job(db), _job(db)
    changes = RowChanges()
    with db.sessions() as session, session.begin():
        one, two = session.get(JobRow, ending), session.get(JobRow, starting)
        assert one is not None and two is not None
        changes.job(one, state="succeeded", finished_at=3.0, exit_code=0, reason="succeeded")
        attempt = changes.new_attempt(
            job_id=starting,
            number=1,
            allocations=[{"node": "local", "cores": [0], "gpus": [], "memory": 1}],
            handles=[],
            started_at=2.0,
            message="",
        )
        changes.job(two, attempts=1, state="running", started_at=2.0, message="")
        record(session, 3.0, "succeeded", "job succeeded", ending, exit_code=0)
        record(session, 2.0, "scheduled", "attempt 1", starting, backfilled=False)
        changes.write(session)
        write_events(session)
    with db.sessions() as session, session.begin():
        changes.attempt(attempt, handles=[{"pid": 7, "started": 1.5}], started_at=2.5)
        two = session.get(JobRow, starting)
        assert two is not None
        changes.job(two, started_at=2.5)
        changes.write(session)
    with db.engine.connect() as connection:
        return [
            tuple(row)
            for table in ("jobs", "attempts", "events")
            for row in connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1, 2")
        ]


def test_sqlite_driver_path_writes_what_sqlalchemy_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statements handed to SQLite's driver directly leave the same rows (JSON and
    all) as SQLAlchemy's execution of them."""
    direct = Database(sqlite_url(tmp_path / "direct.db"))
    rows = _write_a_step(direct)
    direct.close()
    monkeypatch.setattr(row_writes, "DRIVER_SQLITE", False)
    through = Database(sqlite_url(tmp_path / "through.db"))
    assert _write_a_step(through) == rows
    through.close()
    assert any(b'"cores": [0]' in str(row).encode() for row in rows)
