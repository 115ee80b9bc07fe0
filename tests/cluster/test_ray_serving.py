"""Serving replicas on Ray nodes: each is a service job placed on a node, listening on
all addresses there, loading the model from a copy sent to its node; the gateway finds
it at its node's address and balances across the nodes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton

from tests.cluster.conftest import RayPlane
from tests.registry.artifacts import iris, write_sklearn

pytestmark = pytest.mark.slow


def test_two_replicas_on_two_ray_nodes_answer_through_the_gateway(
    ray_plane: RayPlane, tmp_path: Path
) -> None:
    admin = ray_plane.admin
    admin.register_model("iris", write_sklearn(tmp_path / "iris.pkl"), "sklearn", to_onnx=True)
    admin.deploy("iris@1", replicas=2, cpus=2, memory="512M")  # 2 cores: one node each
    view = admin.wait_deployment("iris", ready=2, timeout=120)
    nodes = {admin.get(r.job_id).attempts[-1].node for r in view.replicas}
    assert len(nodes) == 2 and all(node.startswith("ray-") for node in nodes)
    # Each node loads the model from its own copy, sent with the replica's launch (the
    # uploaded pickle went to the node that ran its load job, as iris.pkl).
    copies = sorted(ray_plane.home.glob("nodes/*/shipped/*/iris.onnx"))
    assert len(copies) == 2 and len({c.parent.parent.parent for c in copies}) == 2
    features, labels = iris()
    rows = np.asarray(features[:8], np.float32)
    url = ray_plane.plane.url.removeprefix("http://")
    token = (ray_plane.home / "admin.token").read_text().strip()
    client = triton.InferenceServerClient(url)
    try:
        for _ in range(4):  # spread over both replicas by the gateway
            tensor = triton.InferInput("input", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows)
            answer = client.infer("iris", [tensor], headers={"Authorization": f"Bearer {token}"})
            assert list(answer.as_numpy("label")) == list(labels[:8])
    finally:
        client.close()
        admin.undeploy("iris")


def test_a_replica_on_a_dead_node_is_replaced_on_another(
    ray_plane: RayPlane, tmp_path: Path
) -> None:
    from tests.cluster.conftest import add_node

    admin = ray_plane.admin
    admin.register_model("iris", write_sklearn(tmp_path / "iris.pkl"), "sklearn", to_onnx=True)
    big = {"num_cpus": 4}  # the only nodes a 3-core replica fits on
    doomed = add_node(ray_plane.cluster, **big)
    replacement = None
    try:
        admin.deploy("iris@1", replicas=1, cpus=3, memory="512M")
        view = admin.wait_deployment("iris", ready=1, timeout=120)
        first = admin.get(view.replicas[0].job_id).attempts[-1].node
        ray_plane.cluster.remove_node(doomed)
        replacement = add_node(ray_plane.cluster, **big)
        deadline = time.monotonic() + 120
        second = first
        while second == first:
            assert time.monotonic() < deadline, "the replica was not replaced"
            time.sleep(0.2)
            view = admin.deployment("iris")
            ready = [r for r in view.replicas if r.ready]
            if ready:
                second = admin.get(ready[0].job_id).attempts[-1].node
        assert second != first and second.startswith("ray-")
    finally:
        admin.undeploy("iris")
        if replacement is not None:
            ray_plane.cluster.remove_node(replacement)
