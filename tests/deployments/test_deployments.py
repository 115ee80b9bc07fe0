"""Deployments end to end: replicas placed by the scheduler as service jobs, the gateway
on the control plane's port answering the official Triton client, canary weights,
replica death, tenants, and undeploy."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from aios.client import ApiError
from tests.control.control_harness import Running, start_plane, stop_plane
from tests.deployments.deploy_harness import replica_headers, undeploy_all
from tests.registry.artifacts import iris, write_sklearn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("deploy") / "home"
    running = start_plane(home)
    models = tmp_path_factory.mktemp("models")
    admin = running.admin
    for version in (1, 2):
        path = write_sklearn(models / f"iris-{version}.pkl")
        admin.register_model("iris", path, "sklearn", to_onnx=True)
    try:
        yield running
    finally:
        undeploy_all(running)
        stop_plane(running)


def _wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def _triton(plane: Running) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(plane.url.removeprefix("http://"))


def _auth(plane: Running) -> dict[str, str]:
    token = (plane.home / "admin.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def _infer(plane: Running, name: str, rows: np.ndarray[Any, Any]) -> Any:
    client = _triton(plane)
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    try:
        return client.infer(name, [tensor], headers=_auth(plane))
    finally:
        client.close()


def test_two_replicas_serve_the_official_client_through_the_gateway(plane: Running) -> None:
    """Two replica jobs start, the gateway spreads requests over them, and the answers
    are the model's."""
    admin = plane.admin
    view = admin.deploy("iris@1", name="iris-prod", replicas=2, cpus=0.5, memory="512M")
    assert view.versions[0].version == 1
    view = admin.wait_deployment("iris-prod", ready=2)
    jobs = [admin.get(r.job_id) for r in view.replicas]
    assert all(job.kind == "service" and job.state == "running" for job in jobs)

    features, labels = iris()
    result = _infer(plane, "iris-prod", features)
    predicted = result.as_numpy("label")
    assert predicted is not None
    assert (predicted.astype(np.int64) == labels).mean() > 0.9
    assert result.get_response()["model_version"] == "1"

    for _ in range(10):
        _infer(plane, "iris-prod", features[:1])
    secret = replica_headers(plane, "iris-prod")  # a replica answers its gateway only
    for replica in view.replicas:  # both took requests: replicas equally idle take turns
        assert replica.url is not None
        exposition = httpx.get(f"{replica.url}/metrics", headers=secret).text
        served = _counter(exposition, "aios_inference_requests_total")
        assert served >= 3
    metrics = httpx.get(f"{plane.url}/metrics", headers=_auth(plane)).text
    gateway = _counter(metrics, "aios_gateway_requests_total")
    assert gateway == 11
    metadata = httpx.get(f"{plane.url}/v2/models/iris-prod", headers=_auth(plane))
    assert metadata.status_code == 200
    assert [t["name"] for t in metadata.json()["inputs"]] == ["input"]


def _counter(exposition: str, name: str) -> float:
    """The sum of a Prometheus counter's samples in a text exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith((name + "{", name + " "))
    )


def test_a_dead_replica_is_retried_around_and_replaced(plane: Running) -> None:
    admin = plane.admin
    view = admin.wait_deployment("iris-prod", ready=2)
    victim = view.replicas[0]
    pid = _replica_pid(plane.home, victim.job_id)
    os.kill(pid, signal.SIGKILL)
    features, _ = iris()
    for _ in range(20):  # every request is answered, by the replica that lives
        assert _infer(plane, "iris-prod", features[:2]).as_numpy("label") is not None
    _wait_until(lambda: admin.get(victim.job_id).state == "failed")
    replaced = admin.wait_deployment("iris-prod", ready=2, timeout=60)
    assert victim.job_id not in {r.job_id for r in replaced.replicas}
    admin.undeploy("iris-prod")  # its two replicas hold both cores of a 2-core machine
    _wait_until(lambda: all(admin.get(r.job_id).state != "running" for r in replaced.replicas))


def _replica_pid(home: Path, job_id: int) -> int:
    """The server process of a replica job (the child of the job's shell wrapper)."""
    import psutil

    for process in psutil.process_iter(["cmdline", "cwd"]):
        try:
            cmdline = process.info["cmdline"] or []
            if "aios.serving" in cmdline and process.info["cwd"] == str(
                home / "jobs" / str(job_id)
            ):
                return int(process.pid)
        except psutil.Error:
            continue
    raise AssertionError(f"no server process for job {job_id}")


def test_canary_weights_shift_and_roll_back_without_dropping(plane: Running) -> None:
    admin = plane.admin
    admin.deploy("iris@1", name="iris-canary", canary="iris@2:50", cpus=0.25, memory="256M")
    admin.wait_deployment("iris-canary", ready=1)
    features, _ = iris()

    def versions(count: int) -> Counter[str]:
        served: Counter[str] = Counter()
        for _ in range(count):
            served[_infer(plane, "iris-canary", features[:4]).get_response()["model_version"]] += 1
        return served

    split = versions(60)
    assert split["1"] > 5 and split["2"] > 5
    admin.set_traffic("iris-canary", {2: 100})
    # Routed by the new weights once the change is answered, not at the controller's
    # next pass: no request sent after it goes where the old weights said.
    route = plane.plane.routes.get("iris-canary")
    assert route is not None and [w for _, _, w in route.versions] == [0, 100]
    assert versions(20) == Counter({"2": 20})
    admin.set_traffic("iris-canary", {1: 100})  # roll back
    assert versions(20) == Counter({"1": 20})
    with pytest.raises(ApiError) as refused:
        admin.set_traffic("iris-canary", {1: 50, 3: 50})
    assert refused.value.status == 400 and "version 3" in str(refused.value)


def test_other_tenants_do_not_see_a_deployment(plane: Running) -> None:
    admin = plane.admin
    if "lab" not in {q.name for q in admin.queues()}:
        admin.create_queue("lab")
    guest = admin.create_token("guest", tenant="lab")
    with plane.client(guest) as other:
        with pytest.raises(ApiError) as hidden:
            other.deployment("iris-canary")
        assert hidden.value.status == 404
        assert [d.name for d in other.deployments()] == []
    client = triton.InferenceServerClient(plane.url.removeprefix("http://"))
    tensor = triton.InferInput("input", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 4), np.float32))
    with pytest.raises(triton.InferenceServerException, match="no deployment"):
        client.infer("iris-canary", [tensor], headers={"Authorization": f"Bearer {guest}"})
    client.close()


def test_a_deployed_version_cannot_be_deleted_until_undeployed(plane: Running) -> None:
    admin = plane.admin
    admin.deploy("iris@2", name="iris-two", cpus=0.25, memory="256M")
    with pytest.raises(ApiError) as refused:
        admin.delete_model_version("iris", 2)
    assert refused.value.status == 409 and "iris-two" in str(refused.value)
    admin.undeploy("iris-two")
    _wait_until(lambda: "iris-two" not in {d.name for d in admin.deployments()})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "nosuch@1"}, "nosuch"),
        ({"model": "iris@7"}, "7"),
        ({"model": "iris@1", "canary": "iris@2:150"}, "canary"),
        ({"model": "iris@1", "replicas": 2, "max_replicas": 3}, "either replicas"),
        ({"model": "iris@1", "cpus": 0}, "cpu"),
    ],
)
def test_bad_deployments_are_refused(plane: Running, options: dict[str, Any], message: str) -> None:
    response = httpx.post(f"{plane.url}/api/v1/deployments", json=options, headers=_auth(plane))
    assert 400 <= response.status_code < 500
    assert message in response.text


def test_an_update_rolls_out_new_replicas_without_dropping_requests(plane: Running) -> None:
    """Changing the served version starts a new generation; the old replica stops once
    the new one is ready, and requests sent all along are answered."""
    undeploy_all(plane)  # the surge replica needs a free core of the two
    admin = plane.admin
    admin.deploy("iris@1", name="iris-roll", cpus=0.25, memory="256M")
    first = admin.wait_deployment("iris-roll", ready=1)
    features, _ = iris()
    answers: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            answers.append(_infer(plane, "iris-roll", features[:1]).get_response()["model_version"])

    sender = threading.Thread(target=load)
    sender.start()
    try:
        updated = admin.update_deployment("iris-roll", "iris@2", cpus=0.25, memory="256M")
        assert updated.generation == first.generation + 1
        _wait_until(
            lambda: (
                [(r.generation, r.ready) for r in admin.deployment("iris-roll").replicas]
                == [(updated.generation, True)]
            )
        )
    finally:
        stop.set()
        sender.join()
    assert answers[-1] == "2" and "1" in answers
    assert admin.get(first.replicas[0].job_id).state == "cancelled"
    admin.undeploy("iris-roll")


def test_the_gateway_wants_a_known_token(plane: Running) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]}
    url = f"{plane.url}/v2/models/iris-canary/infer"
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401 and "bearer token" in missing.json()["error"]
    unknown = httpx.post(url, json=body, headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401
