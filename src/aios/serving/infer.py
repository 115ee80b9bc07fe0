"""The ``…/infer`` endpoint as plain ASGI: the one route on the hot path.

Profiling the server under load showed FastAPI's routing, dependency solving and
exception wrappers costing about twice what decoding, batching and encoding a small
request cost. :class:`InferEndpoint` therefore sits in front of the FastAPI app as an
ASGI middleware: it answers ``POST /v2/models/{m}[/versions/{v}]/infer`` itself, from
the raw ``receive``/``send`` messages, and hands every other request to the app.

Errors are ``{"error": …}`` with the status :func:`status_of` gives (413 for a body
over the limit); an exception of the model is a 500 naming the model.
"""

from __future__ import annotations

import json
import logging
import re
import time
import zlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aios.errors import AiosError, Busy, Conflict, Forbidden, InvalidInput, NotFound
from aios.serving.repository import LoadedModel, ModelRepository
from aios.serving.runtimes import Signature
from aios.serving.tensors import HEADER_LENGTH, RequestedOutput, decode_request, encode_response

__all__ = ["DISCARD_LIMIT", "BodyTooLarge", "InferEndpoint", "status_of"]

DISCARD_LIMIT = 256 * 1024 * 1024
"""Bytes of an oversize body read and dropped so the client gets its 413 on a healthy
connection; a longer body has the connection cut instead."""

_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_JSON = [(b"content-type", b"application/json")]
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


class InferEndpoint:
    """ASGI middleware answering inference requests for ``repository``; the rest of
    the V2 API is ``app``'s."""

    def __init__(self, app: ASGIApp, repository: ModelRepository, max_body_bytes: int) -> None:
        self.app = app
        self.repository = repository
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = None
        if scope["type"] == "http" and scope["method"] == "POST":
            target = _PATH.fullmatch(scope["path"])
        if target is None:
            await self.app(scope, receive, send)
            return
        try:
            loaded = self.repository.get(target[1], target[2])
        except NotFound as exc:
            await _send(send, 404, _error(str(exc)), _JSON)
            return
        try:
            status, body, headers = await self._answer(loaded, _headers_of(scope), receive)
        except _Disconnected:
            return
        await _send(send, status, body, headers)

    async def _answer(
        self, loaded: LoadedModel, headers: dict[str, str], receive: Receive
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Decodes, checks, batches, runs and encodes one request, counting it."""
        started = time.perf_counter()
        metrics = loaded.metrics
        metrics.requests += 1
        metrics.in_flight += 1
        try:
            if not loaded.ready:
                raise Busy(f"model {loaded.served.ref} is shutting down")
            body = await _read_body(receive, headers, self.max_body_bytes)
            decoded = decode_request(body, _header_length(headers))
            loaded.signature.check_inputs(decoded.inputs)
            _check_outputs(decoded.outputs, loaded.signature)
            outputs = await loaded.batcher.submit(decoded.inputs)
            encoded = encode_response(
                loaded.name,
                loaded.version,
                outputs,
                requested=decoded.outputs,
                binary_output=decoded.binary_output,
                request_id=decoded.id,
            )
        except AiosError as exc:
            status = status_of(exc)
            metrics.error(status)
            return status, _error(str(exc)), _JSON
        except _Disconnected:
            raise
        except Exception as exc:  # the model failed: the server's fault, not the caller's
            log.exception("model %s failed", loaded.served.ref)
            metrics.error(500)
            message = f"model {loaded.served.ref} failed: {type(exc).__name__}: {exc}"
            return 500, _error(message), _JSON
        finally:
            metrics.in_flight -= 1
            metrics.latency.observe(time.perf_counter() - started)
        if encoded.header_length is None:
            return 200, encoded.body, _JSON
        return 200, encoded.body, [_BINARY, (_HEADER_LENGTH, b"%d" % encoded.header_length)]


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
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


def _headers_of(scope: Scope) -> dict[str, str]:
    """The headers of :data:`_WANTED` the request has, by lower-case name (ASGI servers
    give header names in lower case, as Starlette also assumes)."""
    found = {}
    for name, value in scope["headers"]:
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


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The request body, inflated when it came gzip- or deflate-encoded.

    Raises BodyTooLarge past ``limit`` bytes (before or after inflating) and InvalidInput
    for an encoding that cannot be read."""
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
        raise BodyTooLarge(f"the request body is over the limit of {limit} bytes")
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
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
