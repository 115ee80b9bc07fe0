"""What the CLI's tests share: a real control plane on loopback, and readers of the
tables the commands print."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from aios.cli.main import app
from aios.client import Client
from aios.control import ControlPlane, Settings
from aios.resources import Node

CORES = len(os.sched_getaffinity(0))
# Variables that would make rich treat the captured streams as a terminal are removed,
# and so is COLUMNS, so the output does not depend on the shell running the tests.
PLAIN = {"COLUMNS": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}
DEADLINE = 15.0
"""Seconds a test waits for something the control plane does within a few ticks."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A running control plane, an SDK client for its admin, and the CLI pointed at it."""

    plane: ControlPlane
    url: str
    home: Path
    admin: Client

    @classmethod
    def start(cls, home: Path) -> Cluster:
        # This machine's cores, and two pretend GPUs (the executor only sets
        # CUDA_VISIBLE_DEVICES for them), so that `aios nodes` has GPUs to show.
        node = Node.build("local", cpus=CORES, memory="8G", gpus=2, gpu_kind="T4")
        port = free_port()
        plane = ControlPlane(Settings(home=home, port=port, tick=0.2, auth=True, nodes=[node]))
        plane.start_background()
        assert plane.admin_token_path is not None
        url = f"http://127.0.0.1:{port}"
        return cls(
            plane, url, home, Client(url, token=Path(plane.admin_token_path).read_text().strip())
        )

    def stop(self) -> None:
        """Cancels what still runs (stop would leave it running for the next start)."""
        for state in ("queued", "running"):
            for job in self.admin.jobs(state=state, limit=10_000):
                self.admin.cancel(job.id)
        for job in self.admin.jobs(state="running", limit=10_000):
            self.admin.wait(job.id, timeout=DEADLINE)
        self.admin.close()
        self.plane.stop()

    def env(self) -> dict[str, str | None]:
        return {**PLAIN, "AIOS_URL": self.url, "AIOS_HOME": str(self.home), "AIOS_TOKEN": None}

    def aios(self, *args: str | int | Path) -> Result:
        """Runs ``aios ARGS`` in this process as the admin (its token is in AIOS_HOME)."""
        return CliRunner(env=self.env()).invoke(app, [str(arg) for arg in args])


def rows(stdout: str) -> list[list[str]]:
    """The cells of every body row of the rich table(s) in ``stdout``."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in stdout.splitlines()
        if line.startswith("│")
    ]


def row_of(stdout: str, first: str | int) -> list[str]:
    """The row of the table in ``stdout`` whose first cell is ``first``."""
    matching = [row for row in rows(stdout) if row and row[0] == str(first)]
    assert len(matching) == 1, stdout
    return matching[0]


def eventually(check: Callable[[], bool], what: str) -> None:
    """Polls ``check`` until it holds; fails naming ``what`` after :data:`DEADLINE`."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"still not {what} after {DEADLINE} s"
        time.sleep(0.05)


def one_error_line(result: Result) -> str:
    """The single line the CLI printed on stderr, checked to be an ``aios: error:``."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aios: error: "), lines[0]
    return lines[0].removeprefix("aios: error: ")
