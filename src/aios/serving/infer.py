"""The ``…/infer`` endpoint: the one route on the hot path, outside FastAPI.

Profiling the server under load showed FastAPI's routing, dependency solving and
exception wrappers costing about twice what decoding, batching and encoding a small
request cost. :class:`InferEndpoint` answers ``POST /v2/models/{m}[/versions/{v}]/infer``
itself, by callbacks: :meth:`InferEndpoint.infer` decodes and checks a request, hands
it to the model's batcher and, once the batch has run, encodes the answer and gives it
to whoever called. Two callers: the serving replica's HTTP protocol
(:mod:`~aios.serving.protocol`, no ASGI at all), and :meth:`InferEndpoint.__call__`, an
ASGI middleware in front of the FastAPI app for any other ASGI server.

Errors are ``{"error": …}`` with the status :func:`status_of` gives (413 for a body
over the limit); an exception of the model is a 500 naming the model. Every 503 says
``Retry-After`` (:data:`RETRY_AFTER`).

Overload: a request whose model's queue is full is refused (503) as soon as its head
is read (:meth:`InferEndpoint.shed`), never its body: with 8× more clients than the
queue holds, reading and decoding bodies only to refuse them took the CPU the model
needed, and goodput fell to a tenth.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aios.errors import AiosError, Busy, Conflict, Forbidden, InvalidInput, NotFound
from aios.serving.repository import LoadedModel, ModelRepository
from aios.serving.runtimes import Signature
from aios.serving.tensors import (
    HEADER_LENGTH,
    InferRequest,
    RequestedOutput,
    decode_request,
    encode_response,
)

__all__ = [
    "BUSY_HEADERS",
    "DISCARD_LIMIT",
    "RETRY_AFTER",
    "BodyTooLarge",
    "Headers",
    "InferEndpoint",
    "Respond",
    "picked_headers",
    "status_of",
]

Arrays = dict[str, np.ndarray[Any, Any]]

DISCARD_LIMIT = 256 * 1024 * 1024
"""Bytes of an oversize body read and dropped so the client gets its 413 on a healthy
connection; a longer body has the connection cut instead."""

RETRY_AFTER = 1
"""Seconds a client refused with 503 is asked to wait before it retries."""

_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_JSON = [(b"content-type", b"application/json")]
BUSY_HEADERS = [*_JSON, (b"retry-after", b"%d" % RETRY_AFTER)]
"""The headers of every 503."""
_BINARY = (b"content-type", b"application/octet-stream")
_HEADER_LENGTH = HEADER_LENGTH.lower().encode()
log = logging.getLogger("aios.serving")


class BodyTooLarge(InvalidInput):
    """A request body over the server's limit (HTTP 413)."""


class _Disconnected(Exception):
    """The client went away before its body arrived: there is no one to answer."""


def status_of(exc: AiosError) -> int:
    """The HTTP status of an error AIOS raised on purpose."""
    for kind, status in (
        (BodyTooLarge, 413),
        (InvalidInput, 400),
        (NotFound, 404),
        (Conflict, 409),
        (Forbidden, 403),
        (Busy, 503),
    ):
        if isinstance(exc, kind):
            return status
    return 500


Headers = list[tuple[bytes, bytes]]
Respond = Callable[[int, bytes, Headers], None]
"""Called once with a request's answer: status, body, and headers without the length."""


class InferEndpoint:
    """Inference for ``repository``, with the rest of the V2 API ``app``'s.

    Two ways in, one path through: as ASGI middleware (:meth:`__call__`) and from an
    HTTP protocol that parses requests itself (:meth:`infer`, what
    :mod:`~aios.serving.protocol` calls without ASGI's per-request task and messages).
    """

    def __init__(self, app: ASGIApp, repository: ModelRepository, max_body_bytes: int) -> None:
        self.app = app
        self.repository = repository
        self.max_body_bytes = max_body_bytes

    @staticmethod
    def target(path: str) -> tuple[str, str | None] | None:
        """The model and version ``path`` asks to infer with; None for any other path."""
        found = _PATH.fullmatch(path)
        return None if found is None else (found[1], found[2])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = None
        if scope["type"] == "http" and scope["method"] == "POST":
            target = self.target(scope["path"])
        if target is None:
            await self.app(scope, receive, send)
            return
        shed = self.shed(target)
        if shed is not None:  # refused on its head: the body is never received
            await _send(send, 503, shed, BUSY_HEADERS)
            return
        headers = picked_headers(scope["headers"])
        try:
            body, too_large = await _read_body(receive, headers, self.max_body_bytes)
        except _Disconnected:
            return
        answer: asyncio.Future[tuple[int, bytes, Headers]] = (
            asyncio.get_running_loop().create_future()
        )

        def respond(status: int, content: bytes, extra: Headers) -> None:
            if not answer.done():
                answer.set_result((status, content, extra))

        self.infer(target, headers, body, respond, too_large=too_large)
        await _send(send, *await answer)

    def shed(self, target: tuple[str, str | None]) -> bytes | None:
        """The body of a 503 for a request to ``target`` (from :meth:`target`) when its
        model's queue is full, counted in the model's metrics; None when the request may
        be read. Called on a request's head: a shed request's body is never read."""
        try:
            loaded = self.repository.get(*target)
        except NotFound:
            return None  # answered 404 once read
        batcher = loaded.batcher
        if not batcher.full:
            return None
        metrics = loaded.metrics
        metrics.requests += 1
        metrics.shed += 1
        metrics.error(503)
        return _error(
            f"{batcher.label}: the queue is full ({batcher.queued} requests waiting); "
            f"retry after {RETRY_AFTER} s"
        )

    def infer(
        self,
        target: tuple[str, str | None],
        headers: dict[str, str],
        body: bytes,
        respond: Respond,
        *,
        too_large: bool = False,
    ) -> None:
        """Answers one request to ``target`` (from :meth:`target`) through ``respond``,
        now or once its batch has run; ``too_large`` says the body went over the limit
        (and was not kept). Counts the request in the model's metrics."""
        try:
            loaded = self.repository.get(*target)
        except NotFound as exc:
            respond(404, _error(str(exc)), _JSON)
            return
        started = time.perf_counter()
        loaded.metrics.requests += 1
        loaded.metrics.in_flight += 1
        try:
            if not loaded.ready:
                raise Busy(f"model {loaded.served.ref} is shutting down")
            if too_large:
                raise BodyTooLarge(
                    f"the request body is over the limit of {self.max_body_bytes} bytes"
                )
            if "content-encoding" in headers:
                body = _inflated(body, headers, self.max_body_bytes)
            decoded = decode_request(body, _header_length(headers))
            loaded.signature.check_inputs(decoded.inputs)
            _check_outputs(decoded.outputs, loaded.signature)
            loaded.batcher.enqueue(
                decoded.inputs, functools.partial(_answered, loaded, decoded, started, respond)
            )
        except Exception as exc:
            _finish(loaded, started, respond, *_failure(loaded, exc))


def _answered(
    loaded: LoadedModel,
    decoded: InferRequest,
    started: float,
    respond: Respond,
    outputs: Arrays | None,
    error: BaseException | None,
) -> None:
    """Encodes the outputs of a request whose batch has run, or answers its error."""
    try:
        if isinstance(error, asyncio.CancelledError):
            raise Busy(f"model {loaded.served.ref} is shutting down")
        if isinstance(error, Exception):
            raise error
        if error is not None or outputs is None:  # SystemExit and the like, in the model
            raise RuntimeError(f"the model's thread ended with {error!r}")
        encoded = encode_response(
            loaded.name,
            loaded.version,
            outputs,
            requested=decoded.outputs,
            binary_output=decoded.binary_output,
            request_id=decoded.id,
        )
    except Exception as exc:
        _finish(loaded, started, respond, *_failure(loaded, exc))
        return
    if encoded.header_length is None:
        _finish(loaded, started, respond, 200, encoded.body, _JSON)
    else:
        headers = [_BINARY, (_HEADER_LENGTH, b"%d" % encoded.header_length)]
        _finish(loaded, started, respond, 200, encoded.body, headers)


def _failure(loaded: LoadedModel, exc: Exception) -> tuple[int, bytes, Headers]:
    """The answer to a request that failed with ``exc``, counted as an error."""
    if isinstance(exc, AiosError):
        status, message = status_of(exc), str(exc)
    else:  # the model failed: the server's fault, not the caller's
        log.error("model %s failed", loaded.served.ref, exc_info=exc)
        status = 500
        message = f"model {loaded.served.ref} failed: {type(exc).__name__}: {exc}"
    loaded.metrics.error(status)
    return status, _error(message), BUSY_HEADERS if status == 503 else _JSON


def _finish(
    loaded: LoadedModel,
    started: float,
    respond: Respond,
    status: int,
    body: bytes,
    headers: Headers,
) -> None:
    metrics = loaded.metrics
    metrics.in_flight -= 1
    metrics.latency.observe(time.perf_counter() - started)
    respond(status, body, headers)


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def _send(send: Send, status: int, body: bytes, headers: Headers) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", b"%d" % len(body))],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


_WANTED = {
    b"content-length": "content-length",
    b"content-encoding": "content-encoding",
    HEADER_LENGTH.lower().encode(): HEADER_LENGTH.lower(),
}
"""The request headers inference reads; a Starlette ``Headers`` costs more than the
single pass over the raw ones that picks these out."""


def picked_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers of :data:`_WANTED` among ``raw``, by lower-case name (ASGI servers
    give header names in lower case, as Starlette also assumes)."""
    found = {}
    for name, value in raw:
        wanted = _WANTED.get(name)
        if wanted is not None:
            found[wanted] = value.decode("latin-1")
    return found


def _header_length(headers: dict[str, str]) -> int | None:
    raw = headers.get(HEADER_LENGTH.lower())
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{HEADER_LENGTH} must be an integer, got {raw!r}") from None


def _check_outputs(requested: tuple[RequestedOutput, ...] | None, signature: Signature) -> None:
    """Refuses, before the model runs, an output the model does not give."""
    if requested is None:
        return
    known = {spec.name for spec in signature.outputs}
    for output in requested:
        if output.name not in known:
            names = ", ".join(repr(spec.name) for spec in signature.outputs)
            raise InvalidInput(f"unknown output {output.name!r}; the model gives {names}")


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> tuple[bytes, bool]:
    """The request body as sent, and whether it is over ``limit`` bytes (then the body
    is not kept; past :data:`DISCARD_LIMIT` it is not read to its end either)."""
    declared = headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > limit
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        too_large = too_large or size > limit
        if not too_large:
            chunks.append(chunk)
        if not message.get("more_body", False) or size > DISCARD_LIMIT:
            break
    if too_large:
        return b"", True
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), False


def _inflated(body: bytes, headers: dict[str, str], limit: int) -> bytes:
    """``body`` inflated when it came gzip- or deflate-encoded.

    Raises BodyTooLarge when it inflates past ``limit`` bytes and InvalidInput for an
    encoding that cannot be read."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInput(f"unsupported Content-Encoding {encoding!r} (use gzip or deflate)")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"the body is not valid {encoding} data: {exc}") from None
    if len(inflated) > limit:
        raise BodyTooLarge(f"the inflated request body is over the limit of {limit} bytes")
    return inflated
