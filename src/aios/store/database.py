"""Opening the state database: SQLite (WAL) by default, PostgreSQL by URL, the schema
brought up to date by Alembic on every open."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from aios.errors import InvalidInput

__all__ = ["Database", "private_sqlite", "sqlite_url"]

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def private_sqlite(path: Path) -> None:
    """Creates the SQLite file ``path`` readable by its owner alone (0600), or takes
    an existing one's (and its ``-wal`` and ``-shm`` files') access from other users:
    it holds every job's environment. SQLite gives the files it creates beside the
    database the database's own mode, so they follow."""
    if not path.parent.is_dir():
        return  # SQLite says so when it opens the file
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600, follow_symlinks=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) run while the reconcile loop writes; NORMAL sync is
    # durable across process crashes in WAL mode (only an OS crash may lose the tail).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """An engine and a session factory over ``url``, migrated to the latest schema."""

    def __init__(self, url: str, migrate: bool = True) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise InvalidInput(f"--db: not a database URL: {url!r}") from exc
        if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
            raise InvalidInput(
                f"--db: unsupported database {parsed.get_backend_name()!r}; "
                "use sqlite:///PATH or postgresql://…"
            )
        if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in {
            "psycopg2",
            "",
        }:
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        options: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            # A server restart, a failover or an idle-connection reaper closes pooled
            # connections behind our back; testing each one as it leaves the pool costs
            # a round trip and turns what would be a failed request into a reconnect.
            options["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(parsed, future=True, **options)
        except ModuleNotFoundError as exc:
            raise InvalidInput(
                f"--db: the driver for {parsed.get_backend_name()} is not installed "
                f"({exc.name}); for PostgreSQL: pip install 'aios[postgres]'"
            ) from None
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                private_sqlite(Path(parsed.database))
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.migrate()

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def migrate(self) -> None:
        """Upgrades the schema to the newest Alembic revision (a no-op when current)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits as one transaction, or rolls back on error."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
