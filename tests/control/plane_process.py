"""A control plane in a child process, for tests that kill it (SIGKILL) and start it
again on the same state: the command that runs it, and its start, kill and stop."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from aios.client import Client
from tests.control.control_harness import wait_running

__all__ = ["PlaneProcess"]


class PlaneProcess:
    """Runs ``command`` (a control plane serving on ``port`` of loopback, its admin
    token in ``home``) each time :meth:`start` is called."""

    def __init__(self, command: Sequence[str], home: Path, port: int) -> None:
        self.command, self.home, self.port = list(command), home, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Client:
        """Starts the process and returns an admin client once it answers."""
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
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

    def wait_started(self, client: Client, job_id: int, timeout: float = 30) -> None:
        """Waits until the job's process has printed its first line of stdout. Its
        state alone is not enough before a kill: "running" is committed before the
        launch, and a control plane killed in between leaves a job that never started
        (recovery requeues it rather than adopting it)."""
        deadline = time.monotonic() + timeout
        wait_running(client, job_id, timeout)
        log = self.home / "jobs" / str(job_id) / "stdout.log"
        while not (log.exists() and log.read_text()):
            assert time.monotonic() < deadline, f"job {job_id} printed nothing"
            time.sleep(0.05)

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
