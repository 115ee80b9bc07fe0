"""The inference server's HTTP/1.1, byte for byte: requests written by hand on a plain
socket, answers read with a small parser, against a real server whose ``…/infer``
requests take :class:`~aios.serving.protocol.InferProtocol`'s fast path and whose other
requests go through uvicorn and FastAPI. Pipelining order, ``Connection: close`` and
HTTP/1.0, ``Expect: 100-continue``, bodies over the limit, clients that leave, the
idle keep-alive timer, chunked and gzip bodies, malformed requests, and a request head
sent again (recognised without the parser)."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import uvicorn

from aios.serving import BatchingConfig, BatchRecord, ModelRepository, ServedModel
from aios.serving.server import inference_config
from aios.serving.tensors import HEADER_LENGTH
from tests.serving.conftest import Artifacts
from tests.serving.models import digits
from tests.serving.serving_harness import STARTUP, Served, serving
from tests.serving.wire import (
    TIMEOUT,
    Response,
    Wire,
    chunked,
    get,
    request,
)

LIMIT = 16 * 1024
"""The body limit of the module's server: every good request here is well under it."""

KEEP_ALIVE = 2
"""The idle keep-alive timeout, in seconds, of the server built for the idle tests."""

FEATURES = digits()[0]


pytestmark = pytest.mark.usefixtures("server_errors")


DIGITS = "/v2/models/digits/versions/1/infer"
ADDER = "/v2/models/adder/infer"


def digits_body(rows: slice) -> bytes:
    features = FEATURES[rows]
    tensor = {"name": "X", "shape": list(features.shape), "datatype": "FP32"}
    return json.dumps({"inputs": [{**tensor, "data": features.ravel().tolist()}]}).encode()


def adder_body(value: float) -> bytes:
    tensor = {"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [value]}
    return json.dumps({"inputs": [tensor]}).encode()


def outputs(response: Response) -> dict[str, np.ndarray[Any, Any]]:
    assert response.status == 200, response.body
    return {
        out["name"]: np.array(out["data"]).reshape(out["shape"])
        for out in response.json()["outputs"]
    }


def assert_digits(response: Response, rows: slice, artifacts: Artifacts) -> None:
    """``response`` holds the MLP's answer for ``rows``, as the model gives it directly."""
    found = outputs(response)
    features = FEATURES[rows]
    np.testing.assert_array_equal(found["label"], artifacts.mlp.predict(features))
    np.testing.assert_allclose(
        found["probabilities"], artifacts.mlp.predict_proba(features), atol=1e-5
    )


def assert_added(response: Response, value: float) -> None:
    assert outputs(response)["y"].tolist() == [[value + 1.0]]


def wait_until(condition: Callable[[], bool], what: str, within: float = TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def server(artifacts: Artifacts) -> Iterator[Served]:
    repository = ModelRepository()
    # A long batching delay: an answer from digits comes late, after later requests
    # on other paths could have been answered.
    patient = BatchingConfig(max_batch_size=64, max_queue_delay=0.2)
    repository.add(ServedModel("digits", "1", "onnx", artifacts.mlp_onnx, patient))
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    with serving(repository, max_body_bytes=LIMIT) as served:
        yield served


# 1. Pipelining


def test_pipelined_requests_are_answered_in_the_order_sent(
    server: Served, artifacts: Artifacts
) -> None:
    """Four requests in one write (a late inference, a health check, a fast inference, a
    metadata request) get four answers in the order asked, on the same connection."""
    with Wire(server.address) as wire:
        wire.send(
            request("POST", DIGITS, digits_body(slice(0, 3)))
            + get("/v2/health/ready")
            + request("POST", ADDER, adder_body(4.0))
            + get("/v2/models/digits")
        )
        late, ready, fast, metadata = wire.responses(4)
        assert_digits(late, slice(0, 3), artifacts)
        assert (ready.status, ready.json()) == (200, {"ready": True})
        assert_added(fast, 4.0)
        assert metadata.status == 200
        assert metadata.json()["name"] == "digits"
        assert metadata.json()["versions"] == ["1"]
        wire.send(get("/v2/health/live"))
        assert wire.response().json() == {"live": True}


def test_an_inference_pipelined_behind_metadata_waits_for_it(
    server: Served, artifacts: Artifacts
) -> None:
    """Metadata, then a late inference, then a fast one, then health: answered in order."""
    with Wire(server.address) as wire:
        wire.send(
            get("/v2/models/adder")
            + request("POST", DIGITS, digits_body(slice(3, 5)))
            + request("POST", ADDER, adder_body(-1.0))
            + get("/v2/health/live")
        )
        metadata, late, fast, live = wire.responses(4)
        assert (metadata.status, metadata.json()["name"]) == (200, "adder")
        assert_digits(late, slice(3, 5), artifacts)
        assert_added(fast, -1.0)
        assert (live.status, live.json()) == (200, {"live": True})


# 2. Connection: close and HTTP/1.0


@pytest.mark.parametrize(
    ("version", "headers"),
    [("1.1", ("Connection: close",)), ("1.0", ())],
    ids=["connection-close", "http-1.0"],
)
def test_an_inference_that_asks_for_no_reuse_is_answered_then_closed(
    server: Served, artifacts: Artifacts, version: str, headers: tuple[str, ...]
) -> None:
    """``Connection: close`` (or HTTP/1.0 without keep-alive): the answer says
    ``connection: close`` and the server closes the socket after its body."""
    with Wire(server.address) as wire:
        wire.send(request("POST", DIGITS, digits_body(slice(5, 6)), headers, version))
        answer = wire.response()
        assert_digits(answer, slice(5, 6), artifacts)
        assert answer.headers["connection"] == "close"
        assert wire.closed_by_server()


# 3. Expect: 100-continue


def test_expect_100_continue_gets_a_100_before_the_body_is_sent(
    server: Served, artifacts: Artifacts
) -> None:
    """Headers with ``Expect: 100-continue`` alone get ``HTTP/1.1 100 Continue``; the
    body sent after it gets the 200."""
    body = digits_body(slice(6, 8))
    headers = request("POST", DIGITS, body, ("Expect: 100-continue",))[: -len(body)]
    with Wire(server.address) as wire:
        wire.send(headers)
        assert wire.received() == b"HTTP/1.1 100 Continue\r\n\r\n"
        wire.send(body)
        assert_digits(wire.response(), slice(6, 8), artifacts)


def test_expect_100_continue_behind_a_late_inference_waits_its_turn(
    server: Served, artifacts: Artifacts
) -> None:
    """An ``Expect: 100-continue`` request pipelined behind a late inference gets its
    100 after that inference's answer, then its own answer once its body is sent."""
    body = adder_body(8.0)
    headers = request("POST", ADDER, body, ("Expect: 100-continue",))[: -len(body)]
    with Wire(server.address) as wire:
        wire.send(request("POST", DIGITS, digits_body(slice(17, 19))) + headers)
        assert_digits(wire.response(), slice(17, 19), artifacts)
        assert wire.response() == Response(100, {}, b"")
        wire.send(body)
        assert_added(wire.response(), 8.0)


# 4. A body over the limit


BIG = adder_body(1.0) + b" " * LIMIT  # valid JSON, over the limit


@pytest.mark.parametrize(
    "oversize",
    [
        request("POST", ADDER, BIG),
        request("POST", ADDER, chunked(BIG, 4096), ("Transfer-Encoding: chunked",)),
    ],
    ids=["declared-content-length", "chunked-without-length"],
)
def test_a_body_over_the_limit_gets_413_and_the_connection_goes_on(
    server: Served, oversize: bytes
) -> None:
    """A body over ``max_body_bytes``, whether its ``Content-Length`` says so or its
    chunks add up past it, is read to its end and answered 413 naming the limit; the
    same connection then gets its next inference answered."""
    with Wire(server.address) as wire:
        wire.send(oversize)
        refused = wire.response()
        assert refused.status == 413
        assert set(refused.json()) == {"error"}
        assert f"over the limit of {LIMIT} bytes" in refused.json()["error"]
        wire.send(request("POST", ADDER, adder_body(2.0)))
        assert_added(wire.response(), 2.0)


def test_expect_100_continue_with_a_body_over_the_limit_is_refused_before_the_upload(
    server: Served,
) -> None:
    """Headers that declare a body over the limit and ask ``Expect: 100-continue`` get
    the 413 at once instead of a 100 (the client need not upload it), and the connection
    is closed, since the body the client may still send would read as a request."""
    headers = request("POST", ADDER, BIG, ("Expect: 100-continue",))[: -len(BIG)]
    with Wire(server.address) as wire:
        wire.send(headers)
        refused = wire.response()
        assert refused.status == 413
        assert f"over the limit of {LIMIT} bytes" in refused.json()["error"]
        assert refused.headers.get("connection") == "close"
        assert wire.closed_by_server()


# 7. Chunked, 9. gzip and deflate bodies


def test_a_chunked_body_is_assembled(server: Served, artifacts: Artifacts) -> None:
    """A ``Transfer-Encoding: chunked`` inference body, in small chunks: 200 and the
    model's answer."""
    body = chunked(digits_body(slice(8, 11)), 100)
    with Wire(server.address) as wire:
        wire.send(request("POST", DIGITS, body, ("Transfer-Encoding: chunked",)))
        assert_digits(wire.response(), slice(8, 11), artifacts)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
)
def test_a_compressed_body_is_inflated(
    server: Served, artifacts: Artifacts, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    """A body sent with ``Content-Encoding: gzip`` (or deflate): 200 and the answer."""
    body = compress(digits_body(slice(11, 14)))
    with Wire(server.address) as wire:
        wire.send(request("POST", DIGITS, body, (f"Content-Encoding: {encoding}",)))
        assert_digits(wire.response(), slice(11, 14), artifacts)


# 8. Malformed HTTP


def test_garbage_gets_400_and_the_server_serves_new_connections(server: Served) -> None:
    """Bytes that are not HTTP get a 400 and a closed connection; a new connection is
    then served as usual."""
    with Wire(server.address) as wire:
        wire.send(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        refused = wire.response()
        assert refused.status == 400
        assert refused.headers["connection"] == "close"
        assert wire.closed_by_server()
    with Wire(server.address) as wire:
        wire.send(request("POST", ADDER, adder_body(3.0)))
        assert_added(wire.response(), 3.0)


# 10. Unknown models on the fast path


def test_an_unknown_model_gets_404_and_the_connection_goes_on(server: Served) -> None:
    """An inference for a model or version the server does not have gets a 404 naming it
    on the fast path, and the connection then serves a good request."""
    with Wire(server.address) as wire:
        wire.send(request("POST", "/v2/models/nope/infer", adder_body(1.0)))
        missing = wire.response()
        assert missing.status == 404
        assert "nope" in missing.json()["error"]
        wire.send(request("POST", "/v2/models/adder/versions/7/infer", adder_body(1.0)))
        missing = wire.response()
        assert missing.status == 404
        assert "no version '7'" in missing.json()["error"]
        wire.send(request("POST", ADDER, adder_body(5.0)))
        assert_added(wire.response(), 5.0)


def test_a_404_pipelined_behind_a_late_inference_keeps_its_place(
    server: Served, artifacts: Artifacts
) -> None:
    """A 404 the server can answer at once, pipelined behind a late inference, comes
    after that inference's answer, and the next request after it is answered too."""
    with Wire(server.address) as wire:
        wire.send(
            request("POST", DIGITS, digits_body(slice(14, 16)))
            + request("POST", "/v2/models/nope/infer", adder_body(1.0))
            + request("POST", ADDER, adder_body(6.0))
        )
        late, missing, fast = wire.responses(3)
        assert_digits(late, slice(14, 16), artifacts)
        assert missing.status == 404
        assert_added(fast, 6.0)


MANY = 1000
"""Pipelined requests in one write: more than Python's recursion limit allows frames."""


def test_many_quick_answers_pipelined_behind_a_late_inference_all_come_back(
    server: Served, artifacts: Artifacts
) -> None:
    """Requests answered without the model (here 404s), pipelined in one write behind an
    inference that waits for its batch, are all answered, in order, once it is: the
    server starts each from the event loop, not from within the answer before it (which
    recursed once per request, into a RecursionError and a connection left hanging)."""
    missing = request("POST", "/v2/models/nope/infer", b"{}")
    with Wire(server.address) as wire:
        # Room for the whole write at once: the server reads it in one piece and queues
        # every request behind the late one.
        wire.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        wire.send(request("POST", DIGITS, digits_body(slice(16, 17))) + missing * MANY)
        assert_digits(wire.response(), slice(16, 17), artifacts)
        assert [wire.response().status for _ in range(MANY)] == [404] * MANY


# 11. The same request head again: recognised without the parser


SAME_LENGTH = (1.5, 2.5, 3.5, 9.5, 0.0)
"""Values whose adder bodies all have the same length: the same request head."""


def test_a_request_head_sent_again_is_answered_for_its_own_body(
    server: Served, parsed_heads: list[bytes]
) -> None:
    """A client repeating its request head (same URL, headers and length) with other
    bodies gets the answer for each body, and only the first head is parsed."""
    with Wire(server.address) as wire:
        for value in SAME_LENGTH:
            wire.send(request("POST", ADDER, adder_body(value)))
            assert_added(wire.response(), value)
    assert parsed_heads == [ADDER.encode()]


def test_a_head_of_the_same_length_for_another_model_is_parsed(
    server: Served, parsed_heads: list[bytes]
) -> None:
    """After a head was recognised, a request of the same length whose URL differs (a
    model that does not exist) is parsed and answered for its own URL: 404."""
    missing = ADDER.replace("adder", "addex")
    with Wire(server.address) as wire:
        for path in (ADDER, ADDER, missing, ADDER):
            wire.send(request("POST", path, adder_body(2.5)))
            answer = wire.response()
            if path == missing:
                assert (answer.status, answer.json()) == (404, {"error": answer.json()["error"]})
                assert "addex" in answer.json()["error"]
            else:
                assert_added(answer, 2.5)
    assert parsed_heads == [ADDER.encode(), missing.encode(), ADDER.encode()]


def test_a_repeated_head_split_over_two_writes_or_sent_twice_in_one_is_parsed(
    server: Served, parsed_heads: list[bytes]
) -> None:
    """A known head whose request comes in two pieces, or two such requests in one
    write: not one read of exactly one request, so the parser takes them, answered in
    order."""
    ask = [request("POST", ADDER, adder_body(value)) for value in SAME_LENGTH]
    with Wire(server.address) as wire:
        wire.send(ask[0])
        assert_added(wire.response(), SAME_LENGTH[0])
        wire.send(ask[1][:-5])
        time.sleep(0.05)
        wire.send(ask[1][-5:])
        assert_added(wire.response(), SAME_LENGTH[1])
        wire.send(ask[2] + ask[3])
        assert_added(wire.response(), SAME_LENGTH[2])
        assert_added(wire.response(), SAME_LENGTH[3])
        wire.send(ask[4])
        assert_added(wire.response(), SAME_LENGTH[4])
    assert len(parsed_heads) == 4, parsed_heads


def test_a_known_request_inside_another_body_is_that_body(server: Served) -> None:
    """The bytes of a known request arriving as the body of another request are that
    body, even when the other was answered before its body came (FastAPI's 405 to a POST
    on a metadata URL): they are read and dropped, not answered as the known request."""
    known = request("POST", ADDER, adder_body(1.5))
    outer = request("POST", "/v2/models/adder", known)
    with Wire(server.address) as wire:
        wire.send(known)
        assert_added(wire.response(), 1.5)
        wire.send(outer[: -len(known)])
        assert wire.response().status == 405
        wire.send(known)  # the rest of the refused request
        wire.send(request("POST", ADDER, adder_body(2.5)))
        assert_added(wire.response(), 2.5)


@pytest.mark.parametrize("empty", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_requests_each_followed_by_an_empty_line_are_answered_for_their_own_bodies(
    server: Served, empty: bytes
) -> None:
    """An empty line after a request (which HTTP lets a server skip, and the parser does)
    is no part of the next request's head: each answer is for its own body, JSON or
    binary (a head taken two bytes too long read the next body two bytes late)."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 1],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    ).encode()
    length = (f"{HEADER_LENGTH}: {len(header)}",)
    with Wire(server.address) as wire:
        for value in SAME_LENGTH:
            wire.send(request("POST", ADDER, adder_body(value)) + empty)
            assert_added(wire.response(), value)
        for value in SAME_LENGTH:
            tensor = np.array([value], dtype="<f4").tobytes()
            wire.send(request("POST", ADDER, header + tensor, length) + empty)
            assert_added(wire.response(), value)


def test_a_repeated_head_behind_a_late_answer_waits_its_turn(
    server: Served, artifacts: Artifacts
) -> None:
    """A known head sent while an earlier request on the connection is still unanswered
    (the late inference) is answered after it, in the order asked."""
    with Wire(server.address) as wire:
        wire.send(request("POST", ADDER, adder_body(1.5)))
        assert_added(wire.response(), 1.5)
        wire.send(request("POST", DIGITS, digits_body(slice(20, 22))))
        time.sleep(0.05)  # the late one is in its batch, waiting
        wire.send(request("POST", ADDER, adder_body(2.5)))
        late, fast = wire.responses(2)
        assert_digits(late, slice(20, 22), artifacts)
        assert_added(fast, 2.5)


def test_a_chunked_request_sent_again_is_decoded_again(
    server: Served, artifacts: Artifacts, parsed_heads: list[bytes]
) -> None:
    """A chunked request is never taken for a known head: the same bytes twice are two
    parsed requests with their chunks assembled, not a body read raw."""
    ask = request(
        "POST", DIGITS, chunked(digits_body(slice(8, 10)), 64), ("Transfer-Encoding: chunked",)
    )
    with Wire(server.address) as wire:
        for _ in range(2):
            wire.send(ask)
            assert_digits(wire.response(), slice(8, 10), artifacts)
    assert parsed_heads == [DIGITS.encode()] * 2


def test_a_compressed_request_sent_again_is_inflated_again(
    server: Served, artifacts: Artifacts, parsed_heads: list[bytes]
) -> None:
    """A gzip request's head is recognised like any other; its body is still inflated."""
    ask = request(
        "POST", DIGITS, gzip.compress(digits_body(slice(4, 6))), ("Content-Encoding: gzip",)
    )
    with Wire(server.address) as wire:
        for _ in range(3):
            wire.send(ask)
            assert_digits(wire.response(), slice(4, 6), artifacts)
    assert parsed_heads == [DIGITS.encode()]


# A server built here: its keep-alive timeout, and its connections, are the tests'.


@dataclass(frozen=True)
class Running:
    address: str
    server: uvicorn.Server
    repository: ModelRepository

    def connections(self) -> int:
        return len(self.server.server_state.connections)


@contextmanager
def serving_with_keep_alive(repository: ModelRepository, seconds: int) -> Iterator[Running]:
    """As the harness's ``serving``, with uvicorn's ``timeout_keep_alive`` set."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = inference_config(repository)
    config.timeout_keep_alive = seconds
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="aios-serving", daemon=True
    )
    thread.start()
    try:
        wait_until(lambda: server.started, "the server listening", within=STARTUP)
        yield Running(f"127.0.0.1:{port}", server, repository)
    finally:
        server.should_exit = True
        thread.join(STARTUP)
        listener.close()


PAIR = "/v2/models/pair/infer"
SLOW = "/v2/models/slow/infer"


@pytest.fixture(scope="module")
def brief(artifacts: Artifacts) -> Iterator[Running]:
    """A server that closes connections idle for :data:`KEEP_ALIVE` seconds, with
    ``pair``, an adder that runs once two requests are queued (or after a long wait),
    and ``slow``, whose answers take longer than the keep-alive timeout."""
    repository = ModelRepository()
    pair = BatchingConfig(max_batch_size=2, max_queue_delay=TIMEOUT / 2)
    slow = BatchingConfig(max_batch_size=64, max_queue_delay=KEEP_ALIVE * 1.3)
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    repository.add(ServedModel("pair", "1", "python", artifacts.adder_v1, pair))
    repository.add(ServedModel("slow", "1", "python", artifacts.adder_v1, slow))
    with serving_with_keep_alive(repository, KEEP_ALIVE) as running:
        yield running


# 5. A client that leaves while its request waits in a batch


def test_a_client_gone_while_its_request_waits_is_still_run_and_counted(
    brief: Running,
) -> None:
    """A client that disconnects while its inference waits for a batch: the request still
    runs in the next batch, the server answers another connection's request in that
    batch, and the metrics count both requests with nothing left in flight."""
    loaded = brief.repository.get("pair")
    records: list[BatchRecord] = []
    loaded.batcher.observers.append(records.append)
    wait_until(lambda: brief.connections() == 0, "no connection open before the test")
    try:
        with Wire(brief.address) as gone:
            gone.send(request("POST", PAIR, adder_body(10.0)))
            wait_until(lambda: loaded.batcher.queued == 1, "the request queued")
        wait_until(lambda: brief.connections() == 0, "the server saw the client leave")
        assert loaded.batcher.queued == 1  # still waiting for its batch
        with Wire(brief.address) as stays:
            stays.send(request("POST", PAIR, adder_body(20.0)))
            assert_added(stays.response(), 20.0)
            wait_until(lambda: loaded.metrics.in_flight == 0, "both requests answered")
            stays.send(get("/metrics"))
            metrics = stays.response().body.decode()
    finally:
        loaded.batcher.observers.remove(records.append)
    assert [(r.requests, r.rows) for r in records] == [(2, 2)]
    labels = '{model="pair",version="1"}'
    assert f"aios_inference_requests_total{labels} 2.0" in metrics
    assert f"aios_inference_in_flight{labels} 0.0" in metrics
    assert f"aios_inference_request_seconds_count{labels} 2.0" in metrics
    assert 'aios_inference_errors_total{model="pair"' not in metrics


def test_a_pipelined_inference_whose_client_left_is_not_run(brief: Running) -> None:
    """An inference pipelined behind a late one, from a client that leaves before its
    turn: the late one still runs, the one behind it never reaches its model."""
    slow = brief.repository.get("slow")
    adder = brief.repository.get("adder")
    before = adder.metrics.requests
    wait_until(lambda: brief.connections() == 0, "no connection open before the test")
    with Wire(brief.address) as gone:
        gone.send(request("POST", SLOW, adder_body(1.0)) + request("POST", ADDER, adder_body(2.0)))
        wait_until(lambda: slow.batcher.queued == 1, "the late request queued")
    wait_until(lambda: brief.connections() == 0, "the server saw the client leave")
    wait_until(lambda: slow.metrics.in_flight == 0, "the late request ran")
    time.sleep(0.2)  # the loop's next turns, where the one behind it would have started
    assert adder.metrics.requests == before


# 6. The idle keep-alive timeout


@pytest.mark.parametrize(
    "last", [request("POST", ADDER, adder_body(0.0)), get("/v2/health/live")], ids=["infer", "get"]
)
def test_a_connection_idle_past_the_keep_alive_timeout_is_closed(
    brief: Running, last: bytes
) -> None:
    """After its last answer (fast-path inference, or through the app), a connection
    left idle is closed by the server (within the socket's :data:`TIMEOUT`)."""
    with Wire(brief.address) as wire:
        wire.send(last)
        assert wire.response().status == 200
        assert wire.closed_by_server(), f"still open after {TIMEOUT} s idle"


def test_a_connection_that_keeps_asking_is_not_closed_in_between(brief: Running) -> None:
    """A connection sending a request every quarter of the keep-alive timeout, for more
    than two timeouts, and waiting on an answer longer than the timeout, is never
    closed: idle time is measured from the last answer, and not while one is awaited."""
    asks = [request("POST", ADDER, adder_body(n)) for n in range(4)]
    asks[2:2] = [get("/v2/health/ready"), request("POST", SLOW, adder_body(9.0))]
    asks += [get("/v2/health/live"), request("POST", ADDER, adder_body(7.0))] * 2
    with Wire(brief.address) as wire:
        for ask in asks:
            wire.send(ask)
            assert wire.response().status == 200
            time.sleep(KEEP_ALIVE / 4)
