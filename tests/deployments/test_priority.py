"""A deployment's replicas are jobs like any other: one of higher priority takes the
cores of lower-priority batch work, exactly as the queue's policy preempts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.control.control_harness import CORES, Running, start_plane, stop_plane
from tests.deployments.deploy_harness import undeploy_all
from tests.registry.artifacts import write_sklearn

pytestmark = pytest.mark.slow


@pytest.fixture
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_plane(tmp_path_factory.mktemp("priority") / "home", policy="priority")
    try:
        yield running
    finally:
        undeploy_all(running)
        stop_plane(running)


def test_a_replica_preempts_lower_priority_batch_work(
    plane: Running, tmp_path_factory: pytest.TempPathFactory
) -> None:
    admin = plane.admin
    model = write_sklearn(tmp_path_factory.mktemp("m") / "iris.pkl")
    admin.register_model("iris", model, "sklearn")
    batch = admin.submit("sleep 300", cpus=CORES, memory="1G", priority=0, name="training")
    deadline = time.monotonic() + 30
    while admin.get(batch.id).state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    admin.deploy("iris@1", cpus=1, memory="512M", priority=10)
    view = admin.wait_deployment("iris", ready=1, timeout=90)
    preempted = admin.get(batch.id)
    assert preempted.state == "queued"
    assert preempted.attempts[-1].reason == "preempted"
    kinds = [e.kind for e in admin.events(batch.id)]
    assert "requeued" in kinds
    assert admin.get(view.replicas[0].job_id).priority == 10
    admin.cancel(batch.id)
