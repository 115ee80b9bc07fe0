"""Autoscaling end to end: load through the gateway adds a replica (a second service
job the scheduler places), and a quiet spell takes it away again."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.control.control_harness import Running, start_plane, stop_plane
from tests.deployments.deploy_harness import undeploy_all

pytestmark = pytest.mark.slow

SLOW_MODEL = textwrap.dedent(
    """
    import time


    class Model:
        signature = {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
        }

        def load(self, path):
            pass

        def predict(self, inputs):
            time.sleep(0.1)  # a model that takes its time: requests pile up in flight
            return {"y": inputs["x"] * 2}
    """
)
REQUEST = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_plane(tmp_path_factory.mktemp("scale") / "home")
    model = tmp_path_factory.mktemp("slow") / "slow"
    model.mkdir()
    (model / "model.py").write_text(SLOW_MODEL)
    running.admin.register_model("slow", model, "python")
    try:
        yield running
    finally:
        undeploy_all(running)
        stop_plane(running)


def _load(url: str, token: str, stop: threading.Event, answers: list[int]) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while not stop.is_set():
            answers.append(client.post(f"{url}/v2/models/slow/infer", json=REQUEST).status_code)


def _wait(condition: object, timeout: float) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_load_adds_a_replica_and_quiet_removes_it(plane: Running) -> None:
    admin = plane.admin
    admin.deploy(
        "slow@1",
        min_replicas=1,
        max_replicas=2,
        target_in_flight=1,
        scale_down_delay=3,
        cpus=0.5,
        memory="256M",
    )
    admin.wait_deployment("slow", ready=1)
    token = Path(plane.home / "admin.token").read_text().strip()
    stop = threading.Event()
    answers: list[int] = []
    clients = [
        threading.Thread(target=_load, args=(plane.url, token, stop, answers)) for _ in range(4)
    ]
    for thread in clients:
        thread.start()
    try:
        _wait(lambda: admin.deployment("slow").desired_replicas == 2, timeout=30)
        view = admin.wait_deployment("slow", ready=2, timeout=60)
        assert {admin.get(r.job_id).kind for r in view.replicas} == {"service"}
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    assert answers and set(answers) == {200}  # nothing dropped while it scaled
    _wait(lambda: admin.deployment("slow").desired_replicas == 1, timeout=30)
    _wait(lambda: len(admin.deployment("slow").replicas) == 1, timeout=30)
