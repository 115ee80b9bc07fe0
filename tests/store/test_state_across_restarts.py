"""The control plane's state lives in its database, by URL: `aios up --db URL` killed
with SIGKILL and started again on the same database (SQLite or PostgreSQL) keeps its
queues, tokens and jobs, adopts the job still running, runs the queued one, and starts
none twice."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.client import Client
from tests.control.control_harness import free_port
from tests.control.plane_process import PlaneProcess

UP = "from aios.cli.main import app; app()"


def up_process(home: Path, db: str) -> PlaneProcess:
    """``aios up --home HOME --port PORT --db URL`` in a child process."""
    port = free_port()
    command = [
        *(sys.executable, "-c", UP, "up", "--home", str(home)),
        *("--port", str(port), "--db", db),
    ]
    return PlaneProcess(command, home, port)


@pytest.fixture
def plane(tmp_path: Path, database_url: str) -> Iterator[PlaneProcess]:
    process = up_process(tmp_path / "home", database_url)
    try:
        yield process
    finally:
        process.stop()


def test_a_killed_control_plane_finds_its_state_again_in_the_database(
    plane: PlaneProcess, tmp_path: Path
) -> None:
    """After SIGKILL and a restart: the tenant's queue (with its quota) and token still
    hold, the job still running is adopted and succeeds, the job waiting on it runs,
    and each job started exactly once (each logs its starts to its own stdout: it sees
    only its directory, where the test leaves the file that releases it)."""
    log = 'echo "$AIOS_JOB_ID $AIOS_ATTEMPT"'
    admin = plane.start()
    admin.create_queue("team", quota={"cpu": 1})
    token = admin.create_token("alice", tenant="team")
    with Client(plane.url, token=token) as alice:
        survivor = alice.submit(f"{log}; while [ ! -e release ]; do sleep 0.05; done", memory="64M")
        plane.wait_started(alice, survivor.id)
        waiting = alice.submit(log, memory="64M", after=[survivor.id])
    admin.close()

    plane.kill()
    admin = plane.start()
    [team] = [queue for queue in admin.queues() if queue.name == "team"]
    assert team.quota == {"cpu": 1000}
    with Client(plane.url, token=token) as alice:
        assert alice.whoami().tenant == "team"
        (plane.home / "jobs" / str(survivor.id) / "release").touch()
        assert alice.wait(survivor.id, timeout=30).state == "succeeded"
        assert alice.wait(waiting.id, timeout=30).state == "succeeded"
        assert "adopted" in [event.kind for event in alice.events(survivor.id)]
    admin.close()
    logs = [plane.home / "jobs" / str(job.id) / "stdout.log" for job in (survivor, waiting)]
    started = sorted(line for path in logs for line in path.read_text().splitlines() if line)
    assert started == sorted([f"{survivor.id} 1", f"{waiting.id} 1"])
