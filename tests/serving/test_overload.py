"""Overload: a request that finds its model's queue full is refused (503, with
``Retry-After``) from its head, before its body is read, on the replica's own protocol
and on the ASGI path alike; the refusal is counted as shed, and the server serves
normally once the queue has room. Every other 503 says ``Retry-After`` too."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Send

from aios.serving import BatchingConfig, LoadedModel, ModelRepository, ServedModel
from aios.serving.protocol import InferProtocol
from aios.serving.runtimes import PythonRuntime
from aios.serving.server import create_inference_app
from tests.serving.serving_harness import Served, serving
from tests.serving.wire import TIMEOUT, Wire, request

pytestmark = pytest.mark.usefixtures("server_errors")

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
        return {"y": inputs["x"] + 1}
"""
INFER = "/v2/models/gated/infer"
BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [5]}]})
WHOLE = request("POST", INFER, BODY.encode())


@dataclass(frozen=True)
class Gated:
    """A served model whose batches wait at ``model.gate``; one runs at a time and one
    more may wait: two requests fill it."""

    served: Served
    loaded: LoadedModel
    model: object

    def open(self) -> None:
        self.model.gate.set()  # type: ignore[attr-defined]

    def fill(self) -> list[Wire]:
        """Two connections whose requests run and wait: the queue is full after."""
        running, waiting = Wire(self.served.address), Wire(self.served.address)
        running.send(WHOLE)
        assert self.model.entered.wait(TIMEOUT)  # type: ignore[attr-defined]
        waiting.send(WHOLE)
        deadline = time.monotonic() + TIMEOUT
        while not self.loaded.batcher.full:
            assert time.monotonic() < deadline, "the second request never queued"
            time.sleep(0.005)
        return [running, waiting]


def gated_repository(tmp_path: Path) -> tuple[ModelRepository, LoadedModel]:
    path = tmp_path / "gated.py"
    path.write_text(GATED)
    repository = ModelRepository()
    batching = BatchingConfig(max_batch_size=1, max_queue_size=1)
    loaded = repository.add(ServedModel("gated", "1", "python", path, batching))
    return repository, loaded


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[Gated]:
    repository, loaded = gated_repository(tmp_path)
    assert isinstance(loaded.runtime, PythonRuntime)
    with serving(repository) as served:
        gated = Gated(served, loaded, loaded.runtime.model)
        try:
            yield gated
        finally:
            gated.open()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[InferProtocol]:
    """The server's end of every connection made from now on."""
    made: list[InferProtocol] = []
    connection_made = InferProtocol.connection_made

    def keeping(protocol: InferProtocol, transport: asyncio.BaseTransport) -> None:
        made.append(protocol)
        connection_made(protocol, transport)  # type: ignore[arg-type]

    monkeypatch.setattr(InferProtocol, "connection_made", keeping)
    return made


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"not within {TIMEOUT} s: {what}"
        time.sleep(0.005)


def shed_count(served: Served) -> float:
    metrics = httpx.get(f"{served.url}/metrics").text
    found = re.search(
        r'^aios_inference_shed_total\{model="gated",version="1"\} (\S+)$', metrics, re.M
    )
    assert found, "no aios_inference_shed_total for gated:1"
    return float(found[1])


def test_a_full_queue_answers_a_head_whose_body_never_comes(gated: Gated) -> None:
    """The client sends a head with its Content-Length and never the body: it gets its
    503 with Retry-After at once, and the connection is closed (its body is not waited
    for). The queued requests are answered once the model goes on."""
    queued = gated.fill()
    head = request("POST", INFER, headers=(f"Content-Length: {len(BODY)}",))
    with Wire(gated.served.address) as wire:
        wire.send(head)
        refused = wire.response()
        assert refused.status == 503
        assert refused.headers["retry-after"] == "1"
        assert "queue is full" in refused.json()["error"]
        assert wire.closed_by_server()
    assert shed_count(gated.served) == 1
    gated.open()
    for wire in queued:
        with wire:
            assert wire.response().status == 200


def test_a_refused_request_keeps_its_connection_and_succeeds_once_there_is_room(
    gated: Gated, connections: list[InferProtocol]
) -> None:
    """A whole request that finds the queue full gets a 503 and keeps its connection,
    which the server stops reading for the Retry-After, then reads again; the same
    request again (the repeated-head path) is refused again and counted; once the queue
    drains, the connection's next request is answered."""
    queued = gated.fill()
    with Wire(gated.served.address) as wire:
        wire.send(WHOLE)
        first = wire.response()
        transport = connections[-1].transport
        wait_until(
            lambda: not transport.is_reading() and not transport.is_closing(),
            "the refused connection is held (not read, still open)",
        )
        wait_until(transport.is_reading, "the held connection is read again")
        wire.send(WHOLE)
        second = wire.response()
        assert [first.status, second.status] == [503, 503]
        assert second.headers["retry-after"] == "1"
        assert shed_count(gated.served) == 2
        gated.open()
        for other in queued:
            with other:
                assert other.response().status == 200
        wire.send(WHOLE)
        answer = wire.response()
        assert answer.status == 200
        assert answer.json()["outputs"][0]["data"] == [6.0]


def test_the_asgi_path_sheds_without_receiving_the_body(tmp_path: Path) -> None:
    """The app under any ASGI server: a request to a full queue is answered 503 with
    Retry-After and its body is never received."""
    repository, loaded = gated_repository(tmp_path)
    assert isinstance(loaded.runtime, PythonRuntime)
    model = loaded.runtime.model
    app = create_inference_app(repository)
    scope = {
        "type": "http",
        "method": "POST",
        "path": INFER,
        "headers": [(b"content-length", str(len(BODY)).encode())],
    }

    async def whole_body() -> Message:
        return {"type": "http.request", "body": BODY.encode(), "more_body": False}

    async def no_body() -> Message:
        raise AssertionError("the body of a shed request was received")

    async def scenario() -> list[list[Message]]:
        answers: list[list[Message]] = [[], [], []]

        def sender(index: int) -> Send:
            async def send(message: Message) -> None:
                answers[index].append(message)

            return send

        running = asyncio.ensure_future(app.endpoint(scope, whole_body, sender(0)))
        await asyncio.to_thread(model.entered.wait, TIMEOUT)
        waiting = asyncio.ensure_future(app.endpoint(scope, whole_body, sender(1)))
        async with asyncio.timeout(TIMEOUT):
            while not loaded.batcher.full:
                await asyncio.sleep(0.005)
        await app.endpoint(scope, no_body, sender(2))
        model.gate.set()
        await asyncio.gather(running, waiting)
        await loaded.batcher.drain()
        return answers

    first, second, refused = asyncio.run(scenario())
    assert [first[0]["status"], second[0]["status"], refused[0]["status"]] == [200, 200, 503]
    assert (b"retry-after", b"1") in refused[0]["headers"]
    assert loaded.metrics.shed == 1


def test_every_503_says_when_to_retry(tmp_path: Path) -> None:
    """Inference to a model that is draining, and readiness of a draining server."""
    repository, loaded = gated_repository(tmp_path)
    asyncio.run(loaded.batcher.drain())
    with serving(repository) as served:
        infer = httpx.post(f"{served.url}{INFER}", content=BODY)
        model_ready = httpx.get(f"{served.url}/v2/models/gated/ready")
        repository.begin_drain()
        ready = httpx.get(f"{served.url}/v2/health/ready")
    for response in (infer, model_ready, ready):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
