"""The replica secret: how a deployment's secret is derived and handed over, and a
server given one, byte for byte on the wire. Without the secret in
``X-AIOS-Replica-Secret`` a request gets 401 (403 with a wrong one) and no model code
runs, on the inference fast path and through FastAPI alike; health checks stay open; a
request head that was refused is never taken as a repeat, and one admitted is repeated
without a second parse."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from aios.errors import InvalidInput
from aios.serving import ModelRepository, ServedModel
from aios.serving.secret import (
    SECRET_ENV,
    SECRET_HEADER,
    deployment_secret,
    refusal_of,
    take_secret,
)
from aios.serving.server import create_inference_app
from tests.serving.conftest import Artifacts
from tests.serving.serving_harness import Served, serving
from tests.serving.wire import Response, Wire, chunked, request

pytestmark = pytest.mark.usefixtures("server_errors")

SECRET = "0123456789abcdef" * 4
WRONG = "fedcba9876543210" * 4  # as long: a request of the same length as one admitted
KEY = b"k" * 32
ADDER = "/v2/models/adder/infer"
HEADER = SECRET_HEADER.encode()


def adder_body(value: float) -> bytes:
    tensor = {"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [value]}
    return json.dumps({"inputs": [tensor]}).encode()


def assert_added(response: Response, value: float) -> None:
    assert response.status == 200, response.body
    assert response.json()["outputs"][0]["data"] == [value + 1.0]


# 1. The secret itself


def test_a_deployments_secret_is_the_same_each_time_and_differs_by_deployment() -> None:
    """Derived from the key and the deployment's name, id and creation time: stable (a
    replica adopted after a restart keeps its own), and changed by any of them."""
    secret = deployment_secret(KEY, "iris", 3, 1700000000.25)
    assert secret == deployment_secret(KEY, "iris", 3, 1700000000.25)
    assert len(secret) == 64 and int(secret, 16) >= 0
    others = {
        deployment_secret(b"j" * 32, "iris", 3, 1700000000.25),
        deployment_secret(KEY, "iris-2", 3, 1700000000.25),
        deployment_secret(KEY, "iris", 4, 1700000000.25),  # made again under the same name
        deployment_secret(KEY, "iris", 3, 1700000001.25),
    }
    assert secret not in others and len(others) == 4


def test_the_secret_is_taken_out_of_the_environment() -> None:
    environ = {SECRET_ENV: SECRET, "PATH": "/bin"}
    assert take_secret(environ) == SECRET
    assert environ == {"PATH": "/bin"}
    assert take_secret(environ) is None  # not set: a server that asks for none


@pytest.mark.parametrize("value", ["", "  ", "bad\r\nx-injected: 1", "sécret"])
def test_a_blank_or_unprintable_secret_is_refused_by_name(value: str) -> None:
    with pytest.raises(InvalidInput, match=SECRET_ENV):
        take_secret({SECRET_ENV: value})


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(HEADER, SECRET.encode())], None),
        ([(b"content-type", b"x"), (HEADER, SECRET.encode())], None),
        ([], 401),
        ([(b"authorization", f"Bearer {SECRET}".encode())], 401),
        ([(HEADER, WRONG.encode())], 403),
        ([(HEADER, SECRET.encode()[:-1])], 403),
        ([(HEADER, b"")], 403),
        # the first one counts: a second header cannot stand in for a wrong first
        ([(HEADER, WRONG.encode()), (HEADER, SECRET.encode())], 403),
    ],
)
def test_a_request_is_admitted_only_with_the_secret(
    headers: list[tuple[bytes, bytes]], status: int | None
) -> None:
    refusal = refusal_of(SECRET.encode(), headers)
    if status is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal[0] == status
        assert SECRET_HEADER in json.loads(refusal[1])["error"]


# 2. A server with a secret, on the wire


@pytest.fixture(scope="module")
def guarded(artifacts: Artifacts) -> Iterator[Served]:
    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    with serving(repository, secret=SECRET) as served:
        yield served


def _with(secret: str) -> tuple[str, ...]:
    return (f"X-AIOS-Replica-Secret: {secret}",)


def _runs(server: Served) -> int:
    """Requests the adder has been given so far."""
    return server.repository.get("adder").metrics.requests


def _refused(answer: Response, status: int) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert SECRET_HEADER in answer.json()["error"]


@pytest.mark.parametrize(
    ("headers", "status"), [((), 401), (_with(WRONG), 403)], ids=["missing", "wrong"]
)
def test_an_inference_without_the_secret_is_refused_and_runs_no_model(
    guarded: Served, headers: tuple[str, ...], status: int
) -> None:
    """Refused without reaching the model (not even counted as its request); the
    connection goes on and answers the next request that carries the secret."""
    before = _runs(guarded)
    with Wire(guarded.address) as wire:
        wire.send(request("POST", ADDER, adder_body(1.0), headers))
        _refused(wire.response(), status)
        assert _runs(guarded) == before
        wire.send(request("POST", ADDER, adder_body(2.0), _with(SECRET)))
        assert_added(wire.response(), 2.0)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2"),
        ("GET", "/v2/models/adder"),
        ("GET", "/v2/models/adder/versions/1"),
        ("GET", "/v2/models/adder/ready"),
        ("GET", "/v2/models/adder/infer"),
        ("GET", "/metrics"),
        ("GET", "/v2/nosuch"),
    ],
)
def test_every_other_route_wants_the_secret_too(guarded: Served, method: str, path: str) -> None:
    with Wire(guarded.address) as wire:
        wire.send(request(method, path))
        _refused(wire.response(), 401)
        wire.send(request(method, path, None, _with(WRONG)))
        _refused(wire.response(), 403)
        wire.send(request(method, path, None, _with(SECRET)))
        assert wire.response().status not in (401, 403)


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready"])
def test_health_checks_need_no_secret(guarded: Served, path: str) -> None:
    """What the controller probes: it tells only that the server is up."""
    with Wire(guarded.address) as wire:
        wire.send(request("GET", path))
        answer = wire.response()
        assert answer.status == 200 and answer.json() in ({"live": True}, {"ready": True})


def test_a_chunked_inference_without_the_secret_is_refused_and_the_connection_goes_on(
    guarded: Served,
) -> None:
    before = _runs(guarded)
    body = chunked(adder_body(3.0), 7)
    with Wire(guarded.address) as wire:
        wire.send(request("POST", ADDER, body, ("Transfer-Encoding: chunked",)))
        _refused(wire.response(), 401)
        wire.send(request("POST", ADDER, adder_body(3.0), _with(SECRET)))
        assert_added(wire.response(), 3.0)
    assert _runs(guarded) == before + 1


def test_expect_100_continue_without_the_secret_is_refused_before_the_upload(
    guarded: Served,
) -> None:
    """No 100: the 401 comes at once, and the connection is closed since the body the
    client may still send would read as a request."""
    body = adder_body(4.0)
    head = request("POST", ADDER, body, ("Expect: 100-continue",))[: -len(body)]
    with Wire(guarded.address) as wire:
        wire.send(head)
        _refused(wire.response(), 401)
        assert wire.closed_by_server()


def test_an_admitted_head_sent_again_is_answered_without_a_second_parse(
    guarded: Served, parsed_heads: list[bytes]
) -> None:
    """The secret is among the head's bytes: a head recognised as sent before carries
    it, and the fast path stays as fast."""
    with Wire(guarded.address) as wire:
        for value in (1.5, 2.5, 3.5):
            wire.send(request("POST", ADDER, adder_body(value), _with(SECRET)))
            assert_added(wire.response(), value)
    assert parsed_heads == [ADDER.encode()]


def test_a_refused_head_sent_again_is_parsed_and_refused_again(
    guarded: Served, parsed_heads: list[bytes]
) -> None:
    """A refused request is never kept as a repeat, and a head of the same length with
    another secret after an admitted one is not that head: both are checked and refused."""
    before = _runs(guarded)
    with Wire(guarded.address) as wire:
        for _ in range(2):
            wire.send(request("POST", ADDER, adder_body(1.5), _with(WRONG)))
            _refused(wire.response(), 403)
        wire.send(request("POST", ADDER, adder_body(1.5), _with(SECRET)))
        assert_added(wire.response(), 1.5)
        wire.send(request("POST", ADDER, adder_body(2.5), _with(WRONG)))
        _refused(wire.response(), 403)
        wire.send(request("POST", ADDER, adder_body(3.5), _with(SECRET)))
        assert_added(wire.response(), 3.5)
    assert parsed_heads == [ADDER.encode()] * 4
    assert _runs(guarded) == before + 2


def test_a_refused_request_pipelined_behind_an_admitted_one_keeps_its_place(
    guarded: Served,
) -> None:
    with Wire(guarded.address) as wire:
        wire.send(
            request("POST", ADDER, adder_body(5.0), _with(SECRET))
            + request("POST", ADDER, adder_body(6.0))
            + request("GET", "/v2/models/adder")
            + request("POST", ADDER, adder_body(7.0), _with(SECRET))
        )
        first, refused, metadata, last = wire.responses(4)
        assert_added(first, 5.0)
        _refused(refused, 401)
        _refused(metadata, 401)
        assert_added(last, 7.0)


# 3. The app under another ASGI server


def test_the_app_under_another_asgi_server_asks_for_the_secret_too(artifacts: Artifacts) -> None:
    """Without :class:`InferProtocol`, inference goes through the app as ASGI: the app
    checks the secret itself."""
    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    app = create_inference_app(repository, secret=SECRET)

    async def exchange() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            answers = [
                await client.post(ADDER, content=adder_body(1.0)),
                await client.post(ADDER, content=adder_body(1.0), headers={SECRET_HEADER: WRONG}),
                await client.post(ADDER, content=adder_body(1.0), headers={SECRET_HEADER: SECRET}),
                await client.get("/v2/health/live"),
            ]
        await repository.drain()
        return answers

    missing, wrong, admitted, live = asyncio.run(exchange())
    assert (missing.status_code, wrong.status_code, live.status_code) == (401, 403, 200)
    assert admitted.status_code == 200 and admitted.json()["outputs"][0]["data"] == [2.0]
    assert repository.get("adder").metrics.requests == 1
