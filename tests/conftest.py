"""Fixtures shared by the whole suite: the databases the state tests run on.

A test that takes ``database_url`` runs once on SQLite and once on PostgreSQL (its ids
end in ``[sqlite]`` and ``[postgresql]``). The PostgreSQL variant skips, with the
reason, only where no PostgreSQL server is installed; where the environment variable
``CI`` is set it fails instead, so CI never passes without having run it."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from aios.store import sqlite_url
from tests.pg_server import PostgresServer, PostgresUnavailable, server_binaries

DATABASES = ["sqlite", "postgresql"]

# No per-example deadline: on a shared 2-core machine a wall-clock deadline measures the
# machine, not the code, and a stall fails a property test that holds.
settings.register_profile("aios", deadline=None)
settings.load_profile("aios")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the PostgreSQL tests must run in CI, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole session, stopped at its end."""
    binaries = server_binaries()
    if binaries is None:
        _unavailable(
            "no PostgreSQL server (initdb) in /usr/lib/postgresql/*/bin or on PATH; "
            "`make test` installs Debian's postgresql package"
        )
    if importlib.util.find_spec("psycopg") is None:
        _unavailable("psycopg is not installed: pip install 'aios[postgres]'")
    assert binaries is not None
    try:
        server = PostgresServer.start(binaries)
    except PostgresUnavailable as exc:
        pytest.fail(f"the PostgreSQL server did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database of the kind the parameter names: a SQLite file
    in the test's temporary directory, or a PostgreSQL database on :func:`postgres`.
    :class:`~aios.store.Database` migrates it on first open, as in production."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "aios.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()
