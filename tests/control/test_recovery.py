"""A control plane killed with SIGKILL while jobs run: after a restart no job is lost
and none is started twice, with its state in SQLite or in PostgreSQL."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.control_harness import free_port, wait_running
from tests.control.plane_process import PlaneProcess

SERVE = Path(__file__).with_name("serve_plane.py")


def plane_process(home: Path, port: int, db: str | None = None) -> PlaneProcess:
    """``serve_plane.py`` on ``home``; its state in ``db`` (a database URL) or, by
    default, in SQLite in ``home``."""
    database = [] if db is None else ["drf", db]
    return PlaneProcess([sys.executable, str(SERVE), str(home), str(port), *database], home, port)


@pytest.fixture
def plane(tmp_path: Path, database_url: str) -> Iterator[PlaneProcess]:
    """On SQLite the plane keeps its default database in its home, as ``aios up``
    does; on PostgreSQL it is given the URL of a fresh database."""
    db = None if database_url.startswith("sqlite") else database_url
    process = plane_process(tmp_path / "home", free_port(), db)
    try:
        yield process
    finally:
        process.stop()


def test_jobs_survive_a_killed_control_plane_and_none_starts_twice(
    plane: PlaneProcess, tmp_path: Path
) -> None:
    """A job still running is adopted and finishes as succeeded; a job that ended while
    the control plane was down is recorded with its real exit code and retried per its
    policy; a queued job runs after the restart; each job started exactly once per
    attempt (each job logs its starts to its own stdout: it sees only its directory,
    where the test leaves the file that releases it)."""
    client = plane.start()
    log = 'echo "$AIOS_JOB_ID $AIOS_ATTEMPT"'
    survivor = client.submit(f"{log}; while [ ! -e release ]; do sleep 0.05; done", memory="64M")
    dies = client.submit(f"{log}; sleep 0.5; exit 5", retries=1, retry_backoff=0, memory="64M")
    plane.wait_started(client, survivor.id)
    plane.wait_started(client, dies.id)
    waiting = client.submit(f"{log}", memory="64M", after=[survivor.id])
    client.close()

    plane.kill()
    time.sleep(1.0)  # `dies` exits while no control plane is watching
    client = plane.start()
    (plane.home / "jobs" / str(survivor.id) / "release").touch()
    assert client.wait(survivor.id, timeout=30).state == "succeeded"
    assert client.wait(waiting.id, timeout=30).state == "succeeded"
    dead = client.wait(dies.id, timeout=30)
    assert dead.state == "failed"
    assert [(a.reason, a.exit_code) for a in dead.attempts] == [("failed", 5), ("failed", 5)]
    kinds = [e.kind for e in client.events(survivor.id)]
    assert "adopted" in kinds
    logs = [plane.home / "jobs" / str(job.id) / "stdout.log" for job in (survivor, dies, waiting)]
    started = sorted(line for path in logs for line in path.read_text().split("\n") if line)
    assert started == sorted(
        [f"{survivor.id} 1", f"{dies.id} 1", f"{dies.id} 2", f"{waiting.id} 1"]
    )
    client.close()


def test_a_job_killed_for_memory_while_the_control_plane_is_down_is_oom_killed(
    plane: PlaneProcess,
) -> None:
    """The wrapper records the cgroup's OOM kills with the exit status, so the restart
    tells an OOM kill from any other SIGKILL although the cgroup is gone by then."""
    client = plane.start()
    hog = f"{sys.executable} -c 'b=[]\nwhile True: b.append(bytearray(16 << 20))'"
    job = client.submit(f"echo up; while [ ! -e go ]; do sleep 0.05; done; {hog}", memory="128M")
    plane.wait_started(client, job.id)
    client.close()

    plane.kill()
    (plane.home / "jobs" / str(job.id) / "go").touch()
    exit_file = plane.home / "run" / str(job.id) / ".exit-1-0"
    deadline = time.monotonic() + 30
    while not exit_file.exists():  # it ends while no control plane is watching
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client = plane.start()
    done = client.wait(job.id, timeout=30)
    assert (done.state, done.reason) == ("failed", "oom_killed"), done.message
    client.close()


def test_a_control_plane_stopped_with_ctrl_c_leaves_jobs_running(
    plane: PlaneProcess, database_url: str
) -> None:
    client = plane.start()
    job = client.submit(["sleep", "1"], memory="64M")
    wait_running(client, job.id)
    client.close()
    assert plane.process is not None
    plane.process.send_signal(signal.SIGINT)
    assert plane.process.wait(15) == 0
    client = plane.start()
    assert client.wait(job.id, timeout=20).state == "succeeded"
    client.close()
    on_sqlite = database_url.startswith("sqlite")  # its default file in its home
    assert os.path.exists(plane.home / "aios.db") == on_sqlite
