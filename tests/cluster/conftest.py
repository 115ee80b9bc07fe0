"""A real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``), shared
by the module's tests, and a control plane attached to it per test.

The head has no CPUs (nothing is placed on it); three worker nodes carry distinct fake
resources so a test can aim a job at one: ``t4`` has two T4 GPUs, ``fast`` a custom
resource ``fast: 4``, ``plain`` only its cores. Tests that kill nodes add their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from aios.client import Client
from aios.control import ControlPlane, Settings
from tests.control.control_harness import free_port

ray = pytest.importorskip("ray", reason="the Ray tests need 'aios[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

GIB = 1 << 30


@dataclass
class RayPlane:
    plane: ControlPlane
    admin: Client
    cluster: Cluster
    home: Path


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[Cluster]:
    """Shared by this package's tests, and shut down after them: Ray's processes would
    otherwise hold memory and CPU through the rest of the suite."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "resources": {"head": 1}},
    )
    cluster.add_node(num_cpus=2, num_gpus=2, memory=2 * GIB, resources={"accelerator_type:T4": 2})
    cluster.add_node(num_cpus=2, memory=2 * GIB, resources={"fast": 4})
    cluster.add_node(num_cpus=2, memory=2 * GIB)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]


def add_node(cluster: Cluster, **resources: Any) -> Any:
    """Adds a worker node (by default 2 CPUs and 1 GiB) with ``resources`` and waits for
    it."""
    node = cluster.add_node(**({"num_cpus": 2, "memory": GIB} | resources))
    cluster.wait_for_nodes()
    return node


@pytest.fixture
def ray_plane(ray_cluster: Cluster, tmp_path: Path) -> Iterator[RayPlane]:
    port = free_port()
    plane = ControlPlane(
        Settings(home=tmp_path / "home", port=port, tick=0.2, ray=ray_cluster.address)
    )
    plane.start_background()
    assert plane.admin_token_path is not None
    token = Path(plane.admin_token_path).read_text().strip()
    admin = Client(f"http://127.0.0.1:{port}", token=token)
    try:
        yield RayPlane(plane, admin, ray_cluster, tmp_path / "home")
    finally:
        for job in admin.jobs(limit=10_000):
            if job.state in {"queued", "running"}:
                admin.cancel(job.id)
        for job in admin.jobs(limit=10_000):
            if job.state in {"queued", "running"}:
                admin.wait(job.id, timeout=30)
        admin.close()
        plane.stop()
        stop_agents(plane)


def stop_agents(plane: ControlPlane) -> None:
    """Kills the plane's detached node agents (each test's plane has its own) and what
    its replicas left running: a node removed from the cluster stops its raylet, not the
    processes of the machine it stood for, which here is this one."""
    assert plane.ray is not None
    plane.ray.executor.kill_agents()
    nodes = str(plane.home / "nodes")
    for process in psutil.process_iter(["cmdline"]):
        if any(nodes in arg for arg in process.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                process.kill()
