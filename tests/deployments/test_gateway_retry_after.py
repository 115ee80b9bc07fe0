"""The gateway's own 503 (a deployment with no ready replica) tells the client when to
try again, as a replica's 503 does; a 404 does not."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from aios.control.auth import ADMIN
from aios.deployments.gateway import Gateway
from aios.deployments.routing import Route, Routes


def forward(gateway: Gateway, name: str) -> tuple[int, dict[str, str], bytes]:
    async def call() -> tuple[int, dict[str, str], bytes]:
        try:
            return await gateway.forward(ADMIN, name, None, "POST", "/infer", b"{}", {})
        finally:
            await gateway.upstream.close()

    return asyncio.run(call())


def test_no_ready_replica_is_a_503_with_retry_after() -> None:
    routes = Routes()
    routes.set(Route("digits", "alpha", [("digits", 1, 100)]))
    status, headers, _ = forward(Gateway(routes, CollectorRegistry()), "digits")
    assert status == 503
    assert headers["retry-after"] == "1"


def test_an_unknown_deployment_is_a_404_without_retry_after() -> None:
    status, headers, _ = forward(Gateway(Routes(), CollectorRegistry()), "nothing")
    assert status == 404
    assert "retry-after" not in headers
