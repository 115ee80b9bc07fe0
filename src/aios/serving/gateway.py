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
tenant rules are those of the REST API.
"""

from __future__ import annotations

import random
import time
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

from aios.control.api import caller
from aios.control.auth import Principal
from aios.serving.routes import Route, Routes

__all__ = ["Gateway"]

ATTEMPTS = 3
FORWARDED = ("content-type", "inference-header-content-length", "content-encoding")
RETURNED = ("content-type", "inference-header-content-length")


User = Annotated[Principal, Depends(caller)]
"""At module level: FastAPI reads the (postponed) annotations from the module."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Gateway:
    """Routes inference requests to replicas; :attr:`router` mounts it on an app."""

    def __init__(self, routes: Routes, registry: CollectorRegistry, timeout: float = 60.0):
        self.routes = routes
        self.timeout = timeout
        self.rng = random.Random()
        self._client: httpx.AsyncClient | None = None
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

    def client(self) -> httpx.AsyncClient:
        # Made on first use, inside the server's event loop that will use it.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                trust_env=False,
                limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
            return await self._forward(user, name, version, "GET", "", None, {})

        @router.post("/models/{name}/infer")
        @router.post("/models/{name}/versions/{version}/infer")
        async def infer(
            name: str, request: Request, user: User, version: int | None = None
        ) -> Response:
            body = await request.body()
            headers = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
            return await self._forward(user, name, version, "POST", "/infer", body, headers)

        return router

    async def _forward(
        self,
        user: Principal,
        name: str,
        pinned: int | None,
        method: str,
        suffix: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> Response:
        started = time.perf_counter()
        route = self._route(user, name)
        if isinstance(route, JSONResponse):
            return route
        chosen = route.pick_version(self.rng, pinned)
        if chosen is None:
            what = f"version {pinned}" if pinned is not None else "any version"
            return _error(503, f"deployment {name}: no ready replica serves {what}")
        model, version = chosen
        tried: set[int] = set()
        answer: Response = _error(503, f"deployment {name}: no ready replica")
        for attempt in range(ATTEMPTS):
            endpoint = route.pick_endpoint(chosen, tried)
            if endpoint is None:
                break
            if attempt:
                self.retries.labels(name).inc()
            tried.add(endpoint.job_id)
            url = f"{endpoint.url}/v2/models/{model}/versions/{version}{suffix}"
            endpoint.in_flight += 1
            try:
                reply = await self.client().request(method, url, content=body, headers=headers)
            except httpx.TimeoutException:
                answer = _error(504, f"deployment {name}: the replica did not answer in time")
                break  # it may still be working on it: do not pile the work on another
            except httpx.TransportError:
                endpoint.failed = True  # the controller checks it again
                continue
            finally:
                endpoint.in_flight -= 1
            kept = {k: v for k in RETURNED if (v := reply.headers.get(k)) is not None}
            answer = Response(reply.content, status_code=reply.status_code, headers=kept)
            if reply.status_code != 503:
                break
        self.requests.labels(name, str(version), str(answer.status_code)).inc()
        self.latency.labels(name).observe(time.perf_counter() - started)
        return answer
