"""The state database: migrations build exactly the models' schema, SQLite runs in WAL
mode, and a bad URL is refused with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from aios.errors import InvalidInput
from aios.store import Base, Database, JobRow, QueueRow, sqlite_url


def test_migrations_create_the_schema_the_models_describe(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "state.db"))
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


def test_opening_twice_is_a_no_op_migration_and_keeps_the_data(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state.db")
    first = Database(url)
    with first.transaction() as session:
        session.add(QueueRow(name="q", weight=1.0, borrowing_limit={}, created_at=0.0))
    first.close()
    second = Database(url)
    with second.sessions() as session:
        assert session.get(QueueRow, "q") is not None
        revision = session.execute(text("select version_num from alembic_version")).scalar()
    second.close()
    assert revision == newest_revision()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "state.db"))
    with db.engine.connect() as connection:
        assert connection.execute(text("pragma journal_mode")).scalar() == "wal"
        assert connection.execute(text("pragma foreign_keys")).scalar() == 1
    db.close()


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "state.db"))
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.add(QueueRow(name="half", weight=1.0, borrowing_limit={}, created_at=0.0))
        session.flush()
        raise RuntimeError("crash in the middle")
    with db.sessions() as session:
        assert session.get(QueueRow, "half") is None
        assert session.query(JobRow).count() == 0
    db.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://x/y", "unsupported database 'mysql'"), ("::nonsense::", "not a database URL")],
)
def test_unsupported_database_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Database(url)
