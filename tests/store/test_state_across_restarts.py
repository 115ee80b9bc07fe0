"""The control plane's state lives in its database, by URL: `aios up --db URL` killed
with SIGKILL and started again on the same database (SQLite or PostgreSQL) keeps its
queues, tokens and jobs, adopts the job still running, runs the queued one, and starts
none twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aios.client import Client
from tests.control.control_harness import free_port

UP = "from aios.cli.main import app; app()"


class UpProcess:
    """``aios up --home HOME --port PORT --db URL`` in a child process."""

    def __init__(self, home: Path, db: str) -> None:
        self.home, self.db, self.port = home, db, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Client:
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-c", UP, "up", "--home", str(self.home)),
                *("--port", str(self.port), "--db", self.db),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, "the control plane exited"
            assert time.monotonic() < deadline, "the control plane did not come up"
            time.sleep(0.05)
        return Client(self.url, token=(self.home / "admin.token").read_text().strip())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def plane(tmp_path: Path, database_url: str) -> Iterator[UpProcess]:
    process = UpProcess(tmp_path / "home", database_url)
    try:
        yield process
    finally:
        process.stop()


def _wait_running(client: Client, job_id: int) -> None:
    deadline = time.monotonic() + 20
    while client.get(job_id).state != "running":
        assert time.monotonic() < deadline, f"job {job_id} did not start"
        time.sleep(0.05)


def test_a_killed_control_plane_finds_its_state_again_in_the_database(
    plane: UpProcess, tmp_path: Path
) -> None:
    """After SIGKILL and a restart: the tenant's queue (with its quota) and token still
    hold, the job still running is adopted and succeeds, the job waiting on it runs,
    and each job started exactly once."""
    starts, release = tmp_path / "starts", tmp_path / "release"
    log = f'echo "$AIOS_JOB_ID $AIOS_ATTEMPT" >> {starts}'
    admin = plane.start()
    admin.create_queue("team", quota={"cpu": 1})
    token = admin.create_token("alice", tenant="team")
    with Client(plane.url, token=token) as alice:
        survivor = alice.submit(
            f"{log}; while [ ! -e {release} ]; do sleep 0.05; done", memory="64M"
        )
        _wait_running(alice, survivor.id)
        waiting = alice.submit(log, memory="64M", after=[survivor.id])
    admin.close()

    plane.kill()
    admin = plane.start()
    [team] = [queue for queue in admin.queues() if queue.name == "team"]
    assert team.quota == {"cpu": 1000}
    with Client(plane.url, token=token) as alice:
        assert alice.whoami().tenant == "team"
        release.touch()
        assert alice.wait(survivor.id, timeout=30).state == "succeeded"
        assert alice.wait(waiting.id, timeout=30).state == "succeeded"
        assert "adopted" in [event.kind for event in alice.events(survivor.id)]
    admin.close()
    started = sorted(line for line in starts.read_text().splitlines() if line)
    assert started == sorted([f"{survivor.id} 1", f"{waiting.id} 1"])
