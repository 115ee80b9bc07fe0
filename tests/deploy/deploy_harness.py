"""What the deployment tests share: tearing down a plane's deployments."""

from __future__ import annotations

import time

from tests.control.control_harness import Running


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
