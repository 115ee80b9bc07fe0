"""A real control plane for the tests: SQLite in a temporary home (or the PostgreSQL
database a test hands it), the local executor, uvicorn on a free loopback port, and SDK
clients for an admin and for tenants."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from aios.client import ApiError, Client
from aios.control import ControlPlane, Settings
from aios.resources import Node


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    plane: ControlPlane
    url: str
    admin: Client
    home: Path

    def client(self, token: str | None) -> Client:
        return Client(self.url, token=token or "")


CORES = len(os.sched_getaffinity(0))


def local_node(gpus: int = 2) -> Node:
    """This machine's cores (jobs are really pinned to them) with 8 GiB and pretend
    GPUs: for those the executor only sets CUDA_VISIBLE_DEVICES."""
    return Node.build("local", cpus=CORES, memory="8G", gpus=gpus, gpu_kind="T4")


def start_plane(home: Path, policy: str = "drf", gpus: int = 2, db: str | None = None) -> Running:
    """Starts a control plane on ``home``, its state in ``db`` (a database URL) or, by
    default, in SQLite in ``home``."""
    port = free_port()
    plane = ControlPlane(
        Settings(home=home, db=db, port=port, policy=policy, tick=0.2, nodes=[local_node(gpus)])
    )
    plane.start_background()
    assert plane.admin_token_path is not None
    token = Path(plane.admin_token_path).read_text().strip()
    url = f"http://127.0.0.1:{port}"
    return Running(plane, url, Client(url, token=token), home)


def wait_running(client: Client, job_id: int, timeout: float = 30) -> None:
    """Waits until the job is bound ("running": its resources are held, though its
    process may not have started yet); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while client.get(job_id).state != "running":
        assert time.monotonic() < deadline, f"job {job_id} is not running"
        time.sleep(0.05)


def stop_plane(running: Running) -> None:
    """Cancels what still runs (a stopped control plane leaves its jobs running, on
    purpose), waits for it to end, then stops the control plane."""
    live = [j for j in running.admin.jobs(limit=10_000) if j.state in {"queued", "running"}]
    for job in live:
        with contextlib.suppress(ApiError):
            running.admin.cancel(job.id)
    for job in live:
        with contextlib.suppress(ApiError, TimeoutError):
            running.admin.wait(job.id, timeout=30)
    running.admin.close()
    running.plane.stop()
