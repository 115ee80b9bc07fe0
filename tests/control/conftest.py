"""Fixtures of the control-plane tests (helpers live in control_harness.py).

Every test that takes ``control`` runs twice: on SQLite (``[sqlite]``, the embedded
default, in the plane's home) and on PostgreSQL (``[postgresql]``, a fresh database on
the session's throwaway server): the API, the reconcile loop and the store must behave
the same on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.control_harness import Running, start_plane, stop_plane
from tests.pg_server import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def control(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    db = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        db = server.create_migrated_database()
    running = start_plane(tmp_path / "home", db=db)
    assert running.plane.db.is_sqlite == (request.param == "sqlite")
    try:
        yield running
    finally:
        stop_plane(running)
