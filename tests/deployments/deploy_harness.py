"""What the deployment tests share: tearing down a plane's deployments, restarting a
plane over the replicas it leaves running, and the secret a deployment's replicas ask
of a direct caller."""

from __future__ import annotations

import time

from sqlalchemy import select

from aios.client import Client
from aios.control import ControlPlane, Settings
from aios.control.keys import control_key
from aios.serving.secret import KEY_NAME, SECRET_HEADER, deployment_secret
from aios.store.models import DeploymentRow
from tests.control.control_harness import Running, free_port, local_node


def undeploy_all(running: Running, timeout: float = 60.0) -> None:
    """Removes every deployment and waits until no job (a draining replica) still runs
    or waits, so the plane can stop with nothing left behind."""
    for deployment in running.admin.deployments():
        running.admin.undeploy(deployment.name)
    deadline = time.monotonic() + timeout
    while any(j.state in {"queued", "running"} for j in running.admin.jobs()):
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)


def replica_secret(running: Running, name: str) -> str:
    """The secret of deployment ``name``'s replicas, derived as the controller does."""
    db = running.plane.db
    with db.sessions() as session:
        row = session.scalar(select(DeploymentRow).where(DeploymentRow.name == name))
        assert row is not None, f"no deployment {name}"
        return deployment_secret(control_key(db, KEY_NAME), row.name, row.id, row.created_at)


def replica_headers(running: Running, name: str) -> dict[str, str]:
    """What a request straight to a replica of ``name`` carries to be answered."""
    return {SECRET_HEADER: replica_secret(running, name)}


def restart_plane(running: Running) -> Running:
    """Stops ``running``'s control plane, leaving its jobs running (as a stopped plane
    does, on purpose), and starts another on the same home, which adopts them."""
    token = (running.home / "admin.token").read_text().strip()
    running.admin.close()
    running.plane.stop()
    plane = ControlPlane(
        Settings(home=running.home, port=free_port(), tick=0.2, nodes=[local_node()])
    )
    plane.start_background()
    return Running(plane, plane.url, Client(plane.url, token=token), running.home)
