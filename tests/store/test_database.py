"""The state database, on SQLite and on PostgreSQL: migrations build exactly the models'
schema, a reopened database keeps its data, a failed transaction leaves nothing behind,
values come back as written, SQLite runs in WAL mode, and a bad URL is refused with a
message naming it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from aios.errors import InvalidInput
from aios.store import AttemptRow, Base, Database, JobRow, QueueRow, sqlite_url
from tests.pg_server import PostgresServer


def test_migrations_create_the_schema_the_models_describe(database_url: str) -> None:
    db = Database(database_url)
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    db.close()
    assert diff == []


def newest_revision() -> str:
    from alembic.script import ScriptDirectory

    from aios.store.database import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def test_opening_twice_is_a_no_op_migration_and_keeps_the_data(database_url: str) -> None:
    first = Database(database_url)
    with first.transaction() as session:
        session.add(QueueRow(name="q", weight=1.0, borrowing_limit={}, created_at=0.0))
    first.close()
    second = Database(database_url)
    with second.sessions() as session:
        assert session.get(QueueRow, "q") is not None
        revision = session.execute(text("select version_num from alembic_version")).scalar()
    second.close()
    assert revision == newest_revision()


def test_a_failed_transaction_leaves_nothing_behind(database_url: str) -> None:
    db = Database(database_url)
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.add(QueueRow(name="half", weight=1.0, borrowing_limit={}, created_at=0.0))
        session.flush()
        raise RuntimeError("crash in the middle")
    with db.sessions() as session:
        assert session.get(QueueRow, "half") is None
        assert session.query(JobRow).count() == 0
    db.close()


def test_rows_come_back_as_written(database_url: str) -> None:
    """JSON documents (nested, unicode, empty), byte counts past 2**31, floats at full
    precision and NULLs read back equal to what was written, from a new connection."""
    db = Database(database_url)
    env = {"GREETING": "grüß dich", "EMPTY": "", "NESTED": '{"a": [1, 2]}'}
    with db.transaction() as session:
        session.add(QueueRow(name="q", nominal=None, borrowing_limit={}, created_at=0.0))
        job = JobRow(
            name="j",
            owner="admin",
            queue="q",
            state="queued",
            command=["sh", "-c", "echo 'hi'"],
            env=env,
            cpu=64_000,
            memory=3 * 2**40,
            dependencies=[],
            submitted_at=1_700_000_000.123456,
            queued_at=1_700_000_000.123456,
        )
        session.add(job)
        session.flush()
        session.add(
            AttemptRow(
                job_id=job.id,
                number=1,
                allocations=[{"node": "n", "cores": [0, 1], "gpus": [], "custom": []}],
                started_at=1.5,
            )
        )
        job_id = job.id
    db.close()
    db = Database(database_url)
    with db.sessions() as session:
        row = session.get(JobRow, job_id)
        attempt = session.get(AttemptRow, (job_id, 1))
        queue = session.get(QueueRow, "q")
    db.close()
    assert row is not None and attempt is not None and queue is not None
    assert row.command == ["sh", "-c", "echo 'hi'"]
    assert row.env == env
    assert row.memory == 3 * 2**40
    assert row.submitted_at == 1_700_000_000.123456
    assert row.time_limit is None and row.exit_code is None
    assert row.inputs == [] and row.outputs == [] and row.cache is True
    assert attempt.allocations == [{"node": "n", "cores": [0, 1], "gpus": [], "custom": []}]
    assert attempt.handles == []
    assert queue.nominal is None and queue.borrowing_limit == {}


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "state.db"))
    with db.engine.connect() as connection:
        assert connection.execute(text("pragma journal_mode")).scalar() == "wal"
        assert connection.execute(text("pragma foreign_keys")).scalar() == 1
    db.close()


def test_a_sqlite_database_and_its_wal_files_are_the_owners_alone(tmp_path: Path) -> None:
    """A new database file, and the WAL files SQLite makes beside it, are 0600 (they
    hold every job's environment); an existing file readable by others is tightened."""
    path = tmp_path / "state.db"
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    db = Database(sqlite_url(path))
    with db.transaction() as session:
        session.add(QueueRow(name="q", weight=1.0, borrowing_limit={}, created_at=0.0))
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
    db.close()
    for file in files:
        if file.exists():
            file.chmod(0o644)
    reopened = Database(sqlite_url(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files if f.exists())
    reopened.close()


def test_a_postgresql_url_without_a_driver_opens_with_psycopg(postgres: PostgresServer) -> None:
    """``postgresql://`` (and ``postgresql+psycopg2://``, which we do not ship) use
    psycopg 3, the driver the ``postgres`` extra installs."""
    url = postgres.create_database()
    assert url.startswith("postgresql://")
    for given in (url, url.replace("postgresql://", "postgresql+psycopg2://")):
        db = Database(given)
        assert db.engine.dialect.driver == "psycopg"
        assert not db.is_sqlite
        db.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://x/y", "unsupported database 'mysql'"), ("::nonsense::", "not a database URL")],
)
def test_unsupported_database_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Database(url)


def test_connections_the_postgresql_server_dropped_are_replaced(
    postgres: PostgresServer,
) -> None:
    """After the server ends every connection to the database (a restart, a failover),
    the next transaction reconnects instead of failing on a dead pooled connection."""
    import psycopg

    url = postgres.create_database()
    db = Database(url)
    with db.transaction() as session:
        session.add(QueueRow(name="q", weight=1.0, borrowing_limit={}, created_at=0.0))
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (url.rsplit("/", 1)[1],),
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    with db.sessions() as session:
        assert session.get(QueueRow, "q") is not None
    db.close()
