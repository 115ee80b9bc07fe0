"""The control plane's perimeter: what every request passes before any route sees it.

:class:`Perimeter` is one ASGI middleware, the outermost of the app (before the
gateway's inference endpoint). It decides on the request's head alone, in this order:

1. **Host** (DNS rebinding): a ``Host`` header that names no allowed host is refused
   (403). A page on ``evil.example`` whose name is made to resolve to this machine
   reaches the API from the victim's browser with ``Host: evil.example``; nothing else
   tells that request from the user's own.
2. **Origin** (cross-site requests): a POST, PUT, PATCH or DELETE whose ``Origin`` is
   another site's is refused (403), with auth or without it (``--no-auth`` trusts
   every caller on loopback, and a browser's page is one). Allowed: the origin the
   request itself was sent to (``Origin``'s host and port are those of ``Host``), and
   any origin on a host named with ``--allowed-host`` (a proxy in front may rewrite
   ``Host``). ``Origin: null`` is refused. A request without ``Origin`` (the CLI, the
   SDK, curl) is no browser's and goes on.
3. **Authentication before the body**: with auth on, a request that carries a body
   must carry a valid bearer token, or it gets 401 before a byte of the body is read
   (``Connection: close``: the rest is never read). The token is looked up on the event
   loop, as the gateway's endpoint does (which checks inference requests itself, on
   the head too: :class:`~aios.deployments.gateway.GatewayEndpoint`): a user's token is a
   hit in the token book's cache; a job's, or an unknown one, one indexed query.
   Measured per ``POST /api/v1/jobs`` (a spec refused with 422, 1,000 in a row): 1.52
   ms without the perimeter, 1.57 ms with it, 1.77 ms with the lookup in a worker
   thread instead.
4. **Size**: a body over its route's limit (:class:`BodyLimits`) gets 413: at once
   when ``Content-Length`` says so, else when the counted chunks pass the limit; the
   route is then told the client left.
5. **No NaN or Infinity in JSON**: Python's ``json`` reads them, then the database or
   the response cannot hold them. A JSON body of the API holding one (or a number that
   overflows to infinity, ``1e999``) gets 422 naming it, for every route at once.

**Allowed hosts** (``Host`` without its port, which a rebinding does not need):
``localhost`` and every loopback address; the address the server is bound to; names
given with ``aios up --allowed-host``; and when bound to a wildcard (``0.0.0.0``,
``::``), also any IP address and this machine's host name and fully qualified name. An
address in ``Host`` cannot be a rebinding (the browser connected to that very address,
so the page's origin is the server's own); a name can, so only names the operator
vouches for pass. Clients that reach the server by another name (a DNS alias, a proxy)
need ``--allowed-host NAME``; the 403 says so.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio.to_thread
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aios.control.auth import Principal
from aios.errors import InvalidInput

__all__ = [
    "JSON_LIMIT",
    "AllowedHosts",
    "BodyLimits",
    "Perimeter",
    "RouteKind",
    "non_finite",
    "route_kind",
    "split_authority",
]

JSON_LIMIT = 16 << 20
"""Bytes of a JSON request body: a batch of ten thousand jobs of 1.6 KB each."""
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WILDCARDS = frozenset({"0.0.0.0", "::"})
INLINE_CHECK = 1 << 20
"""Bytes of JSON checked on the event loop; a larger body is parsed in a thread."""
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*")
_UPLOAD = re.compile(r"/api/v1/models/[^/]+/versions/?")
Authenticate = Callable[[str | None], Principal | None]
RouteKind = Literal["json", "upload", "inference"]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normal(host: str) -> str:
    """``host`` as compared: lower case, without brackets or a final dot."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.removesuffix(".")


def split_authority(authority: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (``[v6]:port`` for an IPv6 address) as the normal host and the
    port; None when it is neither."""
    authority = authority.strip()
    port: str | None = None
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif authority.count(":") == 1:
        host, _, port = authority.partition(":")
    else:
        host = authority  # a bare IPv6 address, or a name
    if port is not None and not (port.isascii() and port.isdigit() and int(port) < 65536):
        return None
    return _normal(host), int(port) if port is not None else None


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """The hosts a request's ``Host`` may name (see the module's rule)."""

    names: frozenset[str]
    addresses: frozenset[Address]
    vouched: frozenset[str] = frozenset()
    """The ``--allowed-host`` names: an ``Origin`` on one of them is allowed too."""
    any_address: bool = False

    @classmethod
    def build(cls, bind: str, extra: Iterable[str] = ()) -> AllowedHosts:
        """The hosts of a server bound to ``bind`` with ``--allowed-host`` ``extra``;
        InvalidInput naming an ``extra`` that is no host name or address."""
        vouched = frozenset(_check_allowed(host) for host in extra)
        names = {"localhost", *(v for v in vouched if _address(v) is None)}
        addresses: set[Address] = {a for v in vouched if (a := _address(v)) is not None}
        bound = _normal(bind)
        wildcard = bound in WILDCARDS
        if wildcard:
            names |= {_normal(socket.gethostname()), _normal(socket.getfqdn())}
        elif (address := _address(bound)) is not None:
            addresses.add(address)
        else:
            names.add(bound)
        return cls(frozenset(names), frozenset(addresses), vouched, wildcard)

    def allows(self, host: str) -> bool:
        """Whether a ``Host`` header (``name[:port]``) names this server."""
        split = split_authority(host)
        if split is None:
            return False
        name = split[0]
        address = _address(name)
        if address is None:
            return name in self.names
        return address.is_loopback or self.any_address or address in self.addresses

    def allows_origin(self, origin: str, host: str | None) -> bool:
        """Whether a request from a page of ``origin`` may change state: the origin the
        request was sent to (``host``, its ``Host``), or one on a vouched host."""
        scheme, sep, authority = origin.strip().partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in {"http", "https"} or "/" in authority:
            return False  # "null" (a sandboxed frame, a file), or no origin at all
        split = split_authority(authority)
        if split is None:
            return False
        name, port = split
        if name in self.vouched:
            return True
        target = split_authority(host) if host is not None else None
        if target is None or target[0] != name:
            return False
        default = 443 if scheme == "https" else 80
        return (port or default) == (target[1] or default)


def _check_allowed(host: str) -> str:
    name = _normal(host)
    if _address(name) is None and not _NAME.fullmatch(name):
        raise InvalidInput(
            f"--allowed-host: {host!r} is not a host name or address "
            "(give the name alone, without a scheme, port or path)"
        )
    return name


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Bytes a request body may have, by the route it goes to: a model registration
    (``POST /api/v1/models/NAME/versions``, the artifact and its form), an inference
    request (``/v2/…``, the replicas' own limit) and everything else (JSON)."""

    upload: int
    inference: int
    json: int = JSON_LIMIT

    def of(self, kind: RouteKind) -> int:
        return {"upload": self.upload, "inference": self.inference, "json": self.json}[kind]


def route_kind(method: str, path: str) -> RouteKind:
    """Which body a request carries, by its route: an inference request (the gateway
    forwards it as it came), a model registration (a multipart upload), or JSON."""
    if path.startswith("/v2/"):
        return "inference"
    if method == "POST" and _UPLOAD.fullmatch(path):
        return "upload"
    return "json"


class _NonFinite(Exception):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise _NonFinite(text)
    return number


def non_finite(body: bytes) -> str | None:
    """The first ``NaN``, ``Infinity`` or overflowing number in the JSON ``body``, as
    written; None when it holds none (or is no JSON: its route says what is wrong)."""
    try:
        json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NonFinite as found:
        return str(found.args[0])
    except (ValueError, RecursionError):
        return None
    return None


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of ``content_type`` as JSON (it does with none)."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


@dataclass
class _Exchange:
    """One request's body as the perimeter has let it through."""

    limit: int
    received: int = 0
    started: bool = False
    cut: bool = False
    answered: bool = False
    replay: list[Message] = field(default_factory=list)


class Perimeter:
    """The checks of the module's docstring, in front of ``app``.

    ``authenticate`` names the caller of an ``Authorization`` header (None: no one);
    None itself means auth is off.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: AllowedHosts,
        limits: BodyLimits,
        authenticate: Authenticate | None,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.limits = limits
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        kind = route_kind(scope.get("method", "GET"), scope["path"])
        refuse = _Refusal(scope, send, "error" if kind == "inference" else "detail")
        foreign = self._foreign(scope, headers)
        if foreign is not None:
            await refuse(403, foreign)
            return
        length = headers.get("content-length")
        if scope["type"] == "websocket" or (
            (length is None and "transfer-encoding" not in headers) or length == "0"
        ):
            await self.app(scope, receive, send)
            return
        if self.authenticate is not None and kind != "inference":
            caller = self.authenticate(headers.get("authorization"))
            if caller is None:
                await refuse(401, "missing or unknown bearer token (Authorization: Bearer …)")
                return
        limit = self.limits.of(kind)
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                await refuse(400, f"Content-Length {length!r} is not a number of bytes")
                return
            if int(length) > limit:
                await refuse(413, _too_large(limit))
                return
        exchange = _Exchange(limit)
        json_body = kind == "json" and _is_json(headers.get("content-type"))
        if json_body and not await self._check_json(exchange, receive, refuse):
            return
        bounded = self._receiver(exchange, receive, refuse)
        try:
            await self.app(scope, bounded, _sender(exchange, send))
        except ClientDisconnect:
            if not exchange.cut:
                raise  # the route gave up on a body the perimeter cut: answered already

    def _foreign(self, scope: Scope, headers: dict[str, str]) -> str | None:
        """Why the request comes from elsewhere than a client of this control plane (a
        rebinding ``Host``, another site's ``Origin``); None when it does not."""
        host = headers.get("host")
        if host is not None and not self.hosts.allows(host):
            split = split_authority(host)
            return (
                f"Host {host!r} is not a name of this control plane: a page of another "
                "site may have resolved its name to this machine (DNS rebinding). A name "
                "that clients really use is allowed with 'aios up --allowed-host "
                f"{split[0] if split is not None else host}'"
            )
        origin = headers.get("origin")
        changes = scope["type"] == "websocket" or scope["method"] in STATE_CHANGING
        if origin is not None and changes and not self.hosts.allows_origin(origin, host):
            return (
                f"Origin {origin!r}: a page of another site may not change anything here "
                "(a cross-site request); send it from a page of this control plane, or "
                "without a browser"
            )
        return None

    async def _check_json(self, exchange: _Exchange, receive: Receive, refuse: _Refusal) -> bool:
        """Reads the whole JSON body (within the limit) and refuses one that holds a
        non-finite number; True when the app may go on (the body is kept for it)."""
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False  # the client left before its body was whole
            chunks.append(message.get("body", b""))
            exchange.received += len(chunks[-1])
            if exchange.received > exchange.limit:
                await refuse(413, _too_large(exchange.limit))
                return False
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if len(body) > INLINE_CHECK:
            found = await anyio.to_thread.run_sync(non_finite, body)
        else:
            found = non_finite(body)
        if found is not None:
            await refuse(
                422,
                [
                    {
                        "type": "json_invalid",
                        "loc": ["body"],
                        "msg": f"{found} is not a finite number, and JSON has no NaN or "
                        "Infinity: send a finite number (or null)",
                    }
                ],
            )
            return False
        exchange.replay.append({"type": "http.request", "body": body, "more_body": False})
        return True

    @staticmethod
    def _receiver(exchange: _Exchange, receive: Receive, refuse: _Refusal) -> Receive:
        async def bounded() -> Message:
            if exchange.replay:
                return exchange.replay.pop()
            if exchange.cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                exchange.received += len(message.get("body", b""))
                if exchange.received > exchange.limit:
                    exchange.cut = True
                    if not exchange.started:
                        exchange.answered = True
                        await refuse(413, _too_large(exchange.limit))
                    return {"type": "http.disconnect"}
            return message

        return bounded


def _sender(exchange: _Exchange, send: Send) -> Send:
    async def guarded(message: Message) -> None:
        if exchange.answered:
            return  # the perimeter has answered (413): what the route says is dropped
        if message["type"] == "http.response.start":
            exchange.started = True
        await send(message)

    return guarded


def _too_large(limit: int) -> str:
    return f"the request body is over this route's limit of {limit} bytes"


class _Refusal:
    """Answers a request the perimeter refuses, and closes its connection: whatever
    body the client still sends is never read."""

    def __init__(self, scope: Scope, send: Send, key: str) -> None:
        self.scope, self.send, self.key = scope, send, key

    async def __call__(self, status: int, detail: object) -> None:
        if self.scope["type"] == "websocket":
            await self.send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({self.key: detail}, ensure_ascii=False).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
