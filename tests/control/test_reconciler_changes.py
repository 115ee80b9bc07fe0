"""The loop's row changes: written as Core statements, seen at once in memory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from aios.control.records import RowChanges
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
