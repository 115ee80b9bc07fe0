"""The inference server over real HTTP: the official tritonclient with its default
settings (binary tensors both ways), several models and versions, metadata, readiness,
metrics, and bad requests that get a 4xx with ``{"error": …}`` while the server goes on
serving everything else."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from aios.serving import BatchingConfig, BatchRecord, ModelRepository, ServedModel
from aios.serving.runtimes import PythonRuntime
from tests.serving.conftest import Artifacts
from tests.serving.models import digits
from tests.serving.serving_harness import Served, serving


@pytest.fixture(scope="module")
def server(artifacts: Artifacts) -> Iterator[Served]:
    repository = ModelRepository()
    # A long delay for digits:1, so that requests sent together surely meet in a batch.
    patient = BatchingConfig(max_batch_size=64, max_queue_delay=0.2)
    for model in (
        ServedModel("digits", "1", "onnx", artifacts.mlp_onnx, patient),
        ServedModel("digits", "2", "sklearn", artifacts.logistic_pickle),
        ServedModel("adder", "1", "python", artifacts.adder_v1),
        ServedModel("adder", "2", "python", artifacts.adder_v2),
        ServedModel("shouter", "1", "python", artifacts.shouter),
    ):
        repository.add(model)
    with serving(repository) as served:
        yield served


@pytest.fixture
def client(server: Served) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server.address)
    yield client
    client.close()


def fp32_input(name: str, array: np.ndarray[Any, Any]) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return tensor


def test_tritonclient_defaults_infer_with_binary_tensors(
    client: triton.InferenceServerClient, artifacts: Artifacts
) -> None:
    features = digits()[0][:20]
    result = client.infer("digits", [fp32_input("X", features)], model_version="1")
    np.testing.assert_array_equal(result.as_numpy("label"), artifacts.mlp.predict(features))
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), artifacts.mlp.predict_proba(features), atol=1e-5
    )
    assert result.get_response()["model_version"] == "1"


def test_json_tensors_when_the_client_asks_for_them(
    client: triton.InferenceServerClient, artifacts: Artifacts
) -> None:
    features = digits()[0][:3]
    tensor = triton.InferInput("input", list(features.shape), "FP32")
    tensor.set_data_from_numpy(features, binary_data=False)
    outputs = [triton.InferRequestedOutput("label", binary_data=False)]
    result = client.infer("digits", [tensor], model_version="2", outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("label"), artifacts.logistic.predict(features))
    assert result.as_numpy("probabilities") is None  # not asked for


def test_a_request_without_a_version_goes_to_the_latest(
    client: triton.InferenceServerClient,
) -> None:
    ones = np.ones((1, 2), np.float32)
    latest = client.infer("adder", [fp32_input("x", ones)])
    first = client.infer("adder", [fp32_input("x", ones)], model_version="1")
    assert latest.as_numpy("y").tolist() == [[3.0, 3.0]]
    assert first.as_numpy("y").tolist() == [[2.0, 2.0]]
    assert latest.get_response()["model_version"] == "2"


def test_bytes_tensors_travel_both_ways(client: triton.InferenceServerClient) -> None:
    text = triton.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"hey", "é".encode()], dtype=object))
    result = client.infer("shouter", [text])
    assert result.as_numpy("loud").tolist() == [b"HEY!", "é".encode() + b"!"]
    assert result.as_numpy("length").tolist() == [4, 3]


def test_metadata_and_health(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("digits", "1")
    assert metadata["name"] == "digits"
    assert metadata["versions"] == ["1", "2"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 64]}]
    assert client.get_model_metadata("digits")["platform"] == "sklearn"
    assert client.is_model_ready("digits", "1")
    assert client.is_model_ready("adder")
    assert not client.is_model_ready("digits", "9")
    assert not client.is_model_ready("nope")


def test_concurrent_requests_share_batches(server: Served) -> None:
    """32 requests sent at once through HTTP run in fewer, larger batches."""
    records: list[BatchRecord] = []
    batcher = server.repository.get("digits", "1").batcher
    batcher.observers.append(records.append)
    features = digits()[0]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            return await asyncio.gather(
                *(
                    http.post("/v2/models/digits/versions/1/infer", json=_json_request(features[i]))
                    for i in range(32)
                )
            )

    try:
        responses = asyncio.run(send_all())
    finally:
        batcher.observers.remove(records.append)
    assert all(r.status_code == 200 for r in responses)
    assert sum(r.requests for r in records) == 32
    assert max(r.requests for r in records) > 1
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'aios_inference_requests_total{model="digits",version="1"}' in metrics
    assert 'aios_inference_batch_size_count{model="digits",version="1"}' in metrics
    assert 'aios_inference_queue_seconds_bucket{le="0.5",model="digits",version="1"}' in metrics


def _json_request(row: np.ndarray[Any, Any], datatype: str = "FP32") -> dict[str, Any]:
    data = row.tolist()
    return {"inputs": [{"name": "X", "shape": [1, len(data)], "datatype": datatype, "data": data}]}


ROW = digits()[0][0]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/digits/versions/1/infer", b"{oops", 400, "malformed JSON"),
        (
            "/v2/models/digits/versions/1/infer",
            json.dumps(_json_request(ROW[:10])).encode(),
            400,
            r"input 'X': shape \[1, 10\], the model takes \[-1, 64\]",
        ),
        (
            "/v2/models/digits/versions/1/infer",
            json.dumps(_json_request(ROW.astype(np.float64), "FP64")).encode(),
            400,
            "input 'X': datatype FP64, the model takes FP32",
        ),
        (
            "/v2/models/digits/versions/1/infer",
            json.dumps({**_json_request(ROW), "outputs": [{"name": "nope"}]}).encode(),
            400,
            "unknown output 'nope'",
        ),
        ("/v2/models/nope/infer", json.dumps(_json_request(ROW)).encode(), 404, "unknown model"),
        (
            "/v2/models/digits/versions/7/infer",
            json.dumps(_json_request(ROW)).encode(),
            404,
            "model 'digits' has no version '7' \\(it has 1, 2\\)",
        ),
        ("/v2/models/digits/versions/1/nothing", b"{}", 404, "Not Found"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(
    server: Served, path: str, body: bytes, status: int, message: str
) -> None:
    response = httpx.post(f"{server.url}{path}", content=body)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert re.search(message, response.json()["error"])
    request = _json_request(ROW)
    request["inputs"][0]["name"] = "input"
    assert httpx.post(f"{server.url}/v2/models/digits/infer", json=request).status_code == 200


def test_tritonclient_sees_the_servers_message(client: triton.InferenceServerClient) -> None:
    wrong = triton.InferInput("X", [1, 64], "INT32")
    wrong.set_data_from_numpy(np.zeros((1, 64), np.int32))
    with pytest.raises(InferenceServerException) as raised:
        client.infer("digits", [wrong], model_version="1")
    assert raised.value.status() == "400"
    assert "datatype INT32, the model takes FP32" in raised.value.message()


def test_a_body_over_the_limit_gets_413_and_the_server_goes_on(artifacts: Artifacts) -> None:
    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    with serving(repository, max_body_bytes=4096) as served, httpx.Client() as http:
        big = np.zeros((1, 2048), np.float32)
        body = {"inputs": [{"name": "x", "shape": [1, 2048], "datatype": "FP32"}]}
        body["inputs"][0]["data"] = big.ravel().tolist()
        response = http.post(f"{served.url}/v2/models/adder/infer", json=body)
        assert response.status_code == 413
        assert "over the limit of 4096 bytes" in response.json()["error"]
        small = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}
        again = http.post(f"{served.url}/v2/models/adder/infer", json=small)
        assert again.status_code == 200
        assert again.json()["outputs"][0]["data"] == [2.0]


GATED = """
import threading


class Model:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, -1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, -1]}],
    }

    def load(self, path):
        self.gate = threading.Event()
        self.entered = threading.Event()

    def predict(self, inputs):
        self.entered.set()
        self.gate.wait(30)
        return {"y": inputs["x"]}
"""
WAIT = 30.0


def test_a_full_queue_answers_503_at_once_and_draining_turns_readiness_off(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gated.py"
    path.write_text(GATED)
    repository = ModelRepository()
    batching = BatchingConfig(max_batch_size=1, max_queue_size=1)
    loaded = repository.add(ServedModel("gated", "1", "python", path, batching))
    runtime = loaded.runtime
    assert isinstance(runtime, PythonRuntime)
    model = runtime.model
    body = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [5]}]}

    async def scenario(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
            running = asyncio.ensure_future(http.post("/v2/models/gated/infer", json=body))
            await asyncio.to_thread(model.entered.wait, WAIT)
            queued = asyncio.ensure_future(http.post("/v2/models/gated/infer", json=body))
            async with asyncio.timeout(WAIT):
                while loaded.batcher.queued < 1:
                    await asyncio.sleep(0.005)
            refused = await http.post("/v2/models/gated/infer", json=body)
            model.gate.set()
            return [refused, await running, await queued]

    with serving(repository) as served:
        refused, first, second = asyncio.run(scenario(served.url))
        assert refused.status_code == 503
        assert "queue is full" in refused.json()["error"]
        assert [first.status_code, second.status_code] == [200, 200]
        repository.begin_drain()
        ready = httpx.get(f"{served.url}/v2/health/ready")
        assert ready.status_code == 503
        assert "shutting down" in ready.json()["error"]
        assert httpx.get(f"{served.url}/v2/health/live").status_code == 200


def test_the_app_alone_answers_inference_under_any_asgi_server(artifacts: Artifacts) -> None:
    """Without the replica's own protocol (the app under another ASGI server, here
    httpx's in-process transport), ``…/infer`` goes through the same endpoint as ASGI
    middleware: answers, 4xx naming the problem, and metadata from FastAPI."""
    from aios.serving import create_inference_app

    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    app = create_inference_app(repository, max_body_bytes=4096)
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}

    async def exchange() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as http:
            answers = [
                await http.post("/v2/models/adder/infer", json=body),
                await http.post("/v2/models/adder/infer", content=b"{not json"),
                await http.post("/v2/models/nope/infer", json=body),
                await http.post("/v2/models/adder/infer", content=b" " * 5000),
                await http.get("/v2/models/adder"),
            ]
        await repository.drain()
        return answers

    added, malformed, unknown, too_large, metadata = asyncio.run(exchange())
    assert added.status_code == 200
    assert added.json()["outputs"][0]["data"] == [2.0, 3.0]
    assert malformed.status_code == 400 and "error" in malformed.json()
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    assert too_large.status_code == 413 and "4096" in too_large.json()["error"]
    assert metadata.status_code == 200 and metadata.json()["name"] == "adder"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_inference_with_another_method_than_post_gets_405(server: Served, method: str) -> None:
    """``…/infer`` exists but takes POST only: 405 naming the method, ``Allow: POST``."""
    for path in ("/v2/models/digits/infer", "/v2/models/digits/versions/1/infer"):
        response = httpx.request(method, f"{server.url}{path}")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert response.json() == {"error": f"inference takes POST, not {method}"}
