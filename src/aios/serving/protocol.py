"""uvicorn's HTTP/1.1 protocol with inference answered in place, without ASGI.

An ASGI request costs the server a task, an ``asyncio.Event``, a scope and four message
dicts, and its answer goes out in two writes (status line and headers, then the body):
as much CPU as decoding, batching and encoding a small request. :class:`InferProtocol`
is uvicorn's httptools protocol (``uvicorn.protocols.http.httptools_impl``, uvicorn ≥
0.45) in which a ``POST …/infer`` is taken off the parser as it arrives: its body is
collected by the parser callbacks, handed to :meth:`InferEndpoint.infer
<aios.serving.infer.InferEndpoint.infer>` when complete, and the answer is written in
one piece from the batch's callback. Every other request (metadata, health, metrics)
goes through uvicorn and the ASGI app as before, so parsing, keep-alive, pipelining
order, ``Expect: 100-continue``, graceful shutdown and the connection limits stay
uvicorn's.

A client sends the same request head again and again (the same URL and headers, the
same ``Content-Length``): what parsing that head found is kept per connection
(:class:`_Repeat`) from a request that came whole in one read, and a later read of the
same length that starts with the same bytes is taken as the same request with another
body, without the parser and its dozen callbacks. Same bytes, same parse: the parser
would find nothing else in them.

A server with a replica secret (:mod:`~aios.serving.secret`) checks an inference
request's ``X-AIOS-Replica-Secret`` once its headers are parsed; one without it, or with
a wrong one, is answered 401/403 once its body has gone by (never kept, never decoded)
and is never kept as a repeat. A repeated head needs no second check: the header is
among the bytes it repeats.

Overload: a request whose model's queue is full is answered 503 from its head
(:meth:`InferEndpoint.shed <aios.serving.infer.InferEndpoint.shed>`); its body, never
kept, is let go by on a connection that stays open when it came in the same read, and
is not waited for (the connection closes) when it did not. The connection that got the
503 is then not read for the ``Retry-After`` it was given (:meth:`InferProtocol._hold`):
clients that retry at once would otherwise take the event loop's time in refusals, one
per client and loop pass, and starve the model of the requests it has queued.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.parse
from typing import Any, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from aios.serving.infer import (
    BUSY_HEADERS,
    DISCARD_LIMIT,
    RETRY_AFTER,
    Headers,
    InferEndpoint,
    picked_headers,
)
from aios.serving.secret import Refusal, refusal_of

__all__ = ["UVICORN_HOOKS", "InferProtocol", "fits_uvicorn", "infer_protocol"]

UVICORN_HOOKS = (
    "data_received",
    "connection_lost",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "_unset_keepalive_if_required",
    "_start_asgi_task",
)
"""The methods of uvicorn's ``HttpToolsProtocol`` that :class:`InferProtocol` overrides
or calls: private ones among them, which a uvicorn release may rename."""

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TARGETS: dict[bytes, tuple[str, str | None] | None] = {}
"""What :meth:`InferEndpoint.target` said for each URL seen lately (clients repeat theirs)."""
_TARGET_CACHE_SIZE = 1024
_CLOSE = b"connection: close\r\n"
_JSON = [(b"content-type", b"application/json")]


class _Exchange:
    """One inference request on a connection, where uvicorn keeps a request's cycle: the
    attributes the protocol reads of a cycle (``response_complete``, ``keep_alive``)
    mean the same here."""

    __slots__ = (
        "active",
        "body",
        "disconnected",
        "expect_100",
        "headers",
        "keep_alive",
        "more_body",
        "refusal",
        "response_complete",
        "shed",
        "size",
        "target",
        "too_large",
    )

    def __init__(
        self, target: tuple[str, str | None], headers: dict[str, str], keep_alive: bool
    ) -> None:
        self.target = target
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_100 = False
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False  # the body is over the limit: refused, and not kept
        self.refusal: Refusal | None = None  # without the replica's secret: not kept either
        self.shed: bytes | None = None  # a 503's body: the queue was full, not kept either
        self.more_body = True
        self.active = False  # answered next on its connection (not waiting behind another)
        self.response_complete = False
        self.disconnected = False


class _Repeat:
    """A request head this connection sent, and what parsing it found: a read of
    ``length`` bytes that starts with ``head`` is that request again, its body the rest."""

    __slots__ = ("head", "headers", "length", "target")

    def __init__(self, head: bytes, length: int, exchange: _Exchange) -> None:
        self.head = head
        self.length = length
        self.target = exchange.target
        self.headers = exchange.headers


class InferProtocol(HttpToolsProtocol):
    """uvicorn's protocol with ``…/infer`` requests given to :attr:`endpoint` when they
    carry :attr:`secret` (any request does when it is None)."""

    endpoint: InferEndpoint
    secret: bytes | None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        endpoint: InferEndpoint,
        secret: bytes | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.endpoint = endpoint
        self.secret = secret
        self._idle_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._repeat: _Repeat | None = None
        self._between_messages = True  # the parser holds no part of a request
        self._begun = 0  # requests the parser began in the current read
        self._whole: _Exchange | None = None  # one it ended, that a repeat may stand for
        self._parsing = False  # within the parser's callbacks
        self._held: asyncio.TimerHandle | None = None  # not read until it fires

    def data_received(self, data: bytes) -> None:
        repeat = self._repeat
        if (
            repeat is not None
            and len(data) == repeat.length
            and self._between_messages
            and data.startswith(repeat.head)
        ):
            previous: RequestResponseCycle | _Exchange | None = self.cycle
            if previous is None or previous.response_complete:
                self._idle_since = None
                exchange = _Exchange(repeat.target, repeat.headers, keep_alive=True)
                exchange.shed = self.endpoint.shed(repeat.target)
                if exchange.shed is None:
                    exchange.body.append(data[len(repeat.head) :])
                exchange.size = repeat.length - len(repeat.head)
                exchange.more_body = False
                self.cycle = cast(RequestResponseCycle, exchange)
                self._activate(exchange)
                return
        began_between = self._between_messages
        self._begun = 0
        self._whole = None
        self._parsing = True
        try:
            super().data_received(data)
        finally:
            self._parsing = False
        current = self._exchange()
        if (
            current is not None
            and current.shed is not None
            and current.active
            and not current.response_complete
        ):
            self._run(current)  # its body did not come with its head: not waited for
        whole = self._whole
        if whole is not None and began_between and self._begun == 1 and self._between_messages:
            # The read was one request, and maybe empty lines, which the parser skips
            # between requests: kept when its headers' end is where its body begins and
            # its body ends the read (an empty line after it would shift both).
            head = data.find(b"\r\n\r\n") + 4
            if head >= 4 and head + whole.size == len(data):
                self._repeat = _Repeat(data[:head], len(data), whole)

    # The parser's callbacks: an inference request is ours from its headers on.

    def on_headers_complete(self) -> None:
        target = None
        if self.parser.get_method() == b"POST" and not self.parser.should_upgrade():
            target = self._target()
        if target is None:
            self._begin_scope()
            super().on_headers_complete()
            return
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        exchange = _Exchange(target, picked_headers(self.headers), keep_alive)
        exchange.expect_100 = self.expect_100_continue
        if self.secret is not None:
            exchange.refusal = refusal_of(self.secret, self.headers)
        declared = exchange.headers.get("content-length", "")
        exchange.too_large = declared.isdigit() and int(declared) > self.endpoint.max_body_bytes
        if exchange.refusal is None and not exchange.too_large:
            exchange.shed = self.endpoint.shed(target)
        previous: RequestResponseCycle | _Exchange | None = self.cycle
        self.cycle = cast(RequestResponseCycle, exchange)
        if previous is None or previous.response_complete:
            self._activate(exchange)
        else:  # pipelined behind a request not yet answered, as uvicorn queues its own
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, self.app))

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange()
        if exchange is None:
            super().on_body(body)
            return
        if exchange.response_complete:
            return
        exchange.size += len(body)
        exchange.too_large = exchange.too_large or exchange.size > self.endpoint.max_body_bytes
        if exchange.too_large or exchange.refusal is not None or exchange.shed is not None:
            exchange.body.clear()
            if exchange.size > DISCARD_LIMIT and exchange.active:  # not worth reading on
                self._run(exchange)
        else:
            exchange.body.append(body)

    def on_message_complete(self) -> None:
        self._between_messages = True
        exchange = self._exchange()
        if exchange is None:
            super().on_message_complete()
            return
        if self._repeatable(exchange):
            self._whole = exchange
        exchange.more_body = False
        if exchange.active and not exchange.response_complete:
            self._run(exchange)

    def on_message_begin(self) -> None:
        # uvicorn builds the request's ASGI scope here; an inference request needs none,
        # so it is built once the headers show that the request is not one.
        self._between_messages = False
        self._begun += 1
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _begin_scope(self) -> None:
        url, headers, expect_100 = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect_100
        self.scope["headers"] = headers

    # The connection, and how long it may stay idle.

    def connection_lost(self, exc: Exception | None) -> None:
        exchange = self._exchange()
        if exchange is not None:
            exchange.disconnected = True
            self.cycle = None  # type: ignore[assignment]
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._held is not None:
            self._held.cancel()
            self._held = None
        super().connection_lost(exc)

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # busy: a request is arriving or being answered

    def on_response_complete(self) -> None:
        # As uvicorn's, but a connection keeps one idle timer that it re-arms when it
        # fires, instead of setting a timer after each response and cancelling it when
        # the next request arrives.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        if self._idle_since is None or self.transport.is_closing():
            return  # the response that ends the current request sets the timer again
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self._idle_timer = self.loop.call_later(left, self._close_if_idle)
        else:
            self.transport.close()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn starts a pipelined request here once the one before it is answered;
        # from the loop, not from within that answer (a request answered at once would
        # answer the next, and so on: a recursion as deep as the pipeline).
        if isinstance(cycle, _Exchange):
            self.loop.call_soon(self._activate, cycle)
        else:
            super()._start_asgi_task(cycle, app)

    # Ours.

    def _exchange(self) -> _Exchange | None:
        cycle: object = self.cycle
        return cycle if isinstance(cycle, _Exchange) else None

    def _repeatable(self, exchange: _Exchange) -> bool:
        """Whether another request with the head of ``exchange`` would be handled the
        same: admitted (its secret checked), kept alive, no 100-continue, a body under the
        limit and framed by its ``Content-Length`` (not chunked: the parser refuses a
        request that says both)."""
        return (
            exchange.refusal is None
            and exchange.keep_alive
            and not exchange.expect_100
            and not exchange.too_large
            and exchange.headers.get("content-length") == str(exchange.size)
        )

    def _target(self) -> tuple[str, str | None] | None:
        """The model and version the request's URL names for inference, if it does."""
        url = self.url
        try:
            return _TARGETS[url]
        except KeyError:
            pass
        path: str = httptools.parse_url(url).path.decode("ascii")
        target = self.endpoint.target(urllib.parse.unquote(path) if "%" in path else path)
        if len(_TARGETS) >= _TARGET_CACHE_SIZE:
            _TARGETS.clear()
        _TARGETS[url] = target
        return target

    def _activate(self, exchange: _Exchange) -> None:
        if self.transport.is_closing():  # the client left while it waited its turn
            exchange.response_complete = True
            return
        exchange.active = True
        if not exchange.more_body or (exchange.shed is not None and not self._parsing):
            self._run(exchange)
            return
        if exchange.shed is not None:  # answered once the read that holds its head is parsed
            return
        if exchange.expect_100 and (exchange.too_large or exchange.refusal is not None):
            self._run(exchange)  # refused before it is uploaded
            return
        if exchange.expect_100 and not self.transport.is_closing():
            self.transport.write(_CONTINUE)
        self.flow.resume_reading()

    def _run(self, exchange: _Exchange) -> None:
        if exchange.shed is not None:
            self._respond(exchange, 503, exchange.shed, BUSY_HEADERS)
            self._hold()
            return
        if exchange.refusal is not None:
            exchange.body = []
            self._respond(exchange, exchange.refusal[0], exchange.refusal[1], _JSON)
            return
        body = exchange.body[0] if len(exchange.body) == 1 else b"".join(exchange.body)
        exchange.body = []
        respond = functools.partial(self._respond, exchange)
        self.endpoint.infer(
            exchange.target, exchange.headers, body, respond, too_large=exchange.too_large
        )

    def _hold(self) -> None:
        """Reads nothing more from this connection for :data:`RETRY_AFTER` seconds: a
        client that retries sooner than it was told waits in the kernel's buffers, not
        in the server's CPU. (uvicorn's own flow control, resuming the reading of a
        pipelined request, may end a hold early.)"""
        if self.transport.is_closing():
            return
        if self._held is not None:
            self._held.cancel()
        self.transport.pause_reading()
        self._held = self.loop.call_later(RETRY_AFTER, self._release)

    def _release(self) -> None:
        self._held = None
        if not self.transport.is_closing() and not self.flow.read_paused:
            self.transport.resume_reading()

    def _respond(self, exchange: _Exchange, status: int, body: bytes, headers: Headers) -> None:
        """Writes the answer in one piece, then lets uvicorn go on with the connection
        (the next pipelined request, or the keep-alive timer)."""
        if exchange.response_complete:
            return
        exchange.response_complete = True
        if exchange.disconnected or self.transport.is_closing():
            return
        if exchange.more_body:  # answered before its body ended (too large): no reuse
            exchange.keep_alive = False
        parts = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(body))
        if not exchange.keep_alive:
            parts.append(_CLOSE)
        parts += (b"\r\n", body)
        self.transport.write(b"".join(parts))
        if not exchange.keep_alive:
            self.transport.close()
        self.on_response_complete()


def fits_uvicorn() -> bool:
    """Whether the installed uvicorn's protocol has every method this one relies on."""
    return all(callable(getattr(HttpToolsProtocol, name, None)) for name in UVICORN_HOOKS)


def infer_protocol(endpoint: InferEndpoint, secret: bytes | None = None) -> type[InferProtocol]:
    """:class:`InferProtocol` bound to ``endpoint`` and ``secret``, as uvicorn's
    ``Config(http=…)`` takes a protocol class and builds one per connection."""
    bound = functools.partial(InferProtocol, endpoint=endpoint, secret=secret)
    return cast(type[InferProtocol], bound)
