"""The gateway: the Open Inference Protocol on the control plane's port, in front of
every deployment's replicas.

``POST /v2/models/{deployment}/infer`` picks a model version by the deployment's
traffic weights, then the ready replica serving it with the fewest requests in flight,
and forwards the request as it came (JSON or the binary tensor extension: the body and
``Inference-Header-Content-Length`` pass through untouched). A replica that cannot be
reached, drops the connection or answers 503 (draining, queue full) is marked and the
request is tried on another; inference is idempotent, so a retry is safe. The counts
of requests in flight are what the autoscaler scales on.

``/v2/models/{deployment}/versions/{v}/infer`` pins a version. The bearer token and
tenant rules are those of the REST API. Every request forwarded carries the
deployment's replica secret (:mod:`~aios.serving.secret`), without which its replicas
answer nothing.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

from aios.control.auth import Principal
from aios.control.deps import User
from aios.deployments.routing import Route, Routes
from aios.deployments.upstream import Upstream, UpstreamError
from aios.serving.secret import SECRET_HEADER

__all__ = ["Gateway", "GatewayEndpoint"]

ATTEMPTS = 3
FORWARDED = ("content-type", "inference-header-content-length", "content-encoding")
RETURNED = ("content-type", "inference-header-content-length", "retry-after")
RETRY_AFTER = "1"
"""Seconds a client is told to wait after the gateway's own 503 (no ready replica), as
a replica says when its queue is full (:data:`aios.serving.infer.RETRY_AFTER`)."""


def _error(status: int, message: str) -> JSONResponse:
    headers = {"retry-after": RETRY_AFTER} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Gateway:
    """Routes inference requests to replicas; :attr:`router` mounts it on an app."""

    def __init__(self, routes: Routes, registry: CollectorRegistry, timeout: float = 60.0):
        self.routes = routes
        self.timeout = timeout
        self.rng = random.Random()
        self.upstream = Upstream(timeout)
        self.requests = Counter(
            "aios_gateway_requests",
            "Inference requests through the gateway, by deployment, version and status.",
            ["deployment", "version", "code"],
            registry=registry,
        )
        self.retries = Counter(
            "aios_gateway_retries",
            "Requests tried again on another replica.",
            ["deployment"],
            registry=registry,
        )
        self.latency = Histogram(
            "aios_gateway_latency_seconds",
            "Time from receiving a request to answering it, through the gateway.",
            ["deployment"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=registry,
        )
        self.router = self._build()

    async def close(self) -> None:
        await self.upstream.close()

    def _route(self, user: Principal, name: str) -> Route | JSONResponse:
        route = self.routes.get(name)
        if route is None or not user.may_see(route.tenant):
            return _error(404, f"no deployment {name!r}")
        return route

    def _build(self) -> APIRouter:
        router = APIRouter(prefix="/v2", tags=["inference"])

        @router.get("/health/live")
        async def live() -> dict[str, bool]:
            return {"live": True}

        @router.get("/health/ready")
        async def ready() -> dict[str, bool]:
            return {"ready": True}

        @router.get("/models/{name}/ready")
        @router.get("/models/{name}/versions/{version}/ready")
        async def model_ready(name: str, user: User, version: int | None = None) -> Response:
            route = self._route(user, name)
            if isinstance(route, JSONResponse):
                return route
            if route.pick_version(self.rng, version) is None:
                return _error(503, f"deployment {name}: no replica is ready")
            return JSONResponse({"name": name, "ready": True})

        @router.get("/models/{name}")
        @router.get("/models/{name}/versions/{version}")
        async def metadata(name: str, user: User, version: int | None = None) -> Response:
            status, kept, content = await self.forward(user, name, version, "GET", "", None, {})
            return Response(content, status_code=status, headers=kept)

        return router

    async def forward(
        self,
        user: Principal,
        name: str,
        pinned: int | None,
        method: str,
        suffix: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, str], bytes]:
        """Sends the request to a ready replica of deployment ``name`` (trying another
        when one fails) and returns its status, headers and body."""
        started = time.perf_counter()
        route = self.routes.get(name)
        if route is None or not user.may_see(route.tenant):
            return _failure(404, f"no deployment {name!r}")
        chosen = route.pick_version(self.rng, pinned)
        if chosen is None:
            what = f"version {pinned}" if pinned is not None else "any version"
            return _failure(503, f"deployment {name}: no ready replica serves {what}")
        model, version = chosen
        if route.secret is not None:
            headers = {**headers, SECRET_HEADER: route.secret}
        tried: set[int] = set()
        answer = _failure(503, f"deployment {name}: no ready replica")
        for attempt in range(ATTEMPTS):
            endpoint = route.pick_endpoint(chosen, tried)
            if endpoint is None:
                break
            if attempt:
                self.retries.labels(name).inc()
            tried.add(endpoint.job_id)
            path = f"/v2/models/{model}/versions/{version}{suffix}"
            endpoint.in_flight += 1
            try:
                status, got, content = await self.upstream.request(
                    endpoint.host, endpoint.port, method, path, body, headers
                )
            except TimeoutError:
                answer = _failure(504, f"deployment {name}: the replica did not answer in time")
                break  # it may still be working on it: do not pile the work on another
            except UpstreamError:
                endpoint.failed = True  # the controller checks it again
                continue
            finally:
                endpoint.in_flight -= 1
            kept = {k: v for k in RETURNED if (v := got.get(k)) is not None}
            answer = (status, kept, content)
            if status != 503:
                break
        self.requests.labels(name, str(version), str(answer[0])).inc()
        self.latency.labels(name).observe(time.perf_counter() - started)
        return answer


def _failure(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": message}).encode()
    headers = {"content-type": "application/json"}
    if status == 503:
        headers["retry-after"] = RETRY_AFTER
    return status, headers, body


_INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/([0-9]{1,9}))?/infer")


class GatewayEndpoint:
    """The gateway's ``POST …/infer`` as plain ASGI in front of the control plane's app.

    Through FastAPI each request paid for routing, dependency solving and a worker
    thread for the (synchronous) token check: about 3 ms of CPU, ten times the
    replica's own cost. Here the bearer token is looked up in the token book's cache
    on the event loop, the body is read from the raw messages and forwarded as it came;
    every other request goes on to ``app``.
    """

    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway,
        authenticate: Callable[[str | None], Principal | None],
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = None
        if scope["type"] == "http" and scope["method"] == "POST":
            target = _INFER.fullmatch(scope["path"])
        if target is None:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        authorization = None
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            if name == "authorization":
                authorization = value.decode("latin-1")
            elif name in FORWARDED:
                headers[name] = value.decode("latin-1")
        user = self.authenticate(authorization)
        if user is None:
            await _send(send, 401, b'{"error": "missing or unknown bearer token"}', {})
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        pinned = int(target[2]) if target[2] is not None else None
        status, kept, body = await self.gateway.forward(
            user, target[1], pinned, "POST", "/infer", b"".join(chunks), headers
        )
        await _send(send, status, body, kept)


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if not any(k == b"content-type" for k, _ in raw):
        raw.append((b"content-type", b"application/json"))
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
