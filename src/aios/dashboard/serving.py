"""A deployment's traffic as the Models page plots it: request rate, latency
percentiles and errors from the gateway's Prometheus metrics, and batch sizes from its
replicas' own ``/metrics`` (each replica is a separate process with its own registry).

Rates need two readings: :class:`RateMeter` keeps the last count per deployment and
answers with the rate since the previous call.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Sequence

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import BaseModel

__all__ = ["DeploymentTraffic", "RateMeter", "deployment_traffic", "quantile"]

REPLICA_TIMEOUT = 0.5
"""Seconds to wait for a replica's metrics: a busy replica leaves batch sizes blank
rather than holding up the page."""


class VersionTraffic(BaseModel):
    version: str
    requests: int
    errors: int


class DeploymentTraffic(BaseModel):
    """``None`` where the metric has no observation yet."""

    deployment: str
    requests: int
    request_rate: float | None
    versions: list[VersionTraffic]
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    batch_mean: float | None
    batch_p95: float | None
    replicas_read: int


class RateMeter:
    """Requests per second since the previous reading of the same deployment."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def rate(self, name: str, count: int, now: float) -> float | None:
        previous = self._last.get(name)
        self._last[name] = (now, count)
        if previous is None or now <= previous[0] or count < previous[1]:
            return None
        return (count - previous[1]) / (now - previous[0])


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram's cumulative ``(upper bound, count)`` buckets,
    interpolated within a bucket as Prometheus' ``histogram_quantile`` does."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _buckets(samples: Iterable[Sample]) -> list[tuple[float, float]]:
    found = [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]
    return sorted(found)


def _gateway(registry: CollectorRegistry, name: str) -> tuple[list[VersionTraffic], list[Sample]]:
    versions: dict[str, list[int]] = {}
    latency: list[Sample] = []
    for family in registry.collect():
        if family.name == "aios_gateway_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("deployment") == name:
                    counts = versions.setdefault(sample.labels["version"], [0, 0])
                    counts[0] += int(sample.value)
                    if not sample.labels.get("code", "200").startswith("2"):
                        counts[1] += int(sample.value)
        elif family.name == "aios_gateway_latency_seconds":
            latency.extend(s for s in family.samples if s.labels.get("deployment") == name)
    traffic = [VersionTraffic(version=v, requests=r, errors=e) for v, (r, e) in versions.items()]
    return sorted(traffic, key=lambda t: t.version), latency


async def _replica_batches(urls: Sequence[str]) -> tuple[list[tuple[float, float]], float, int]:
    """Batch-size buckets summed over the replicas that answered, the rows' sum, and
    how many answered."""
    merged: dict[float, float] = {}
    rows = 0.0
    read = 0

    async def fetch(client: httpx.AsyncClient, url: str) -> str | None:
        try:
            response = await client.get(f"{url.rstrip('/')}/metrics")
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    async with httpx.AsyncClient(timeout=REPLICA_TIMEOUT) as client:
        texts = await asyncio.gather(*(fetch(client, url) for url in urls))
    for text in texts:
        if text is None:
            continue
        read += 1
        for family in text_string_to_metric_families(text):
            if family.name != "aios_inference_batch_size":
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    merged[bound] = merged.get(bound, 0.0) + sample.value
                elif sample.name.endswith("_sum"):
                    rows += sample.value
    return sorted(merged.items()), rows, read


async def deployment_traffic(
    name: str,
    registry: CollectorRegistry,
    replica_urls: Sequence[str],
    meter: RateMeter,
    now: float | None = None,
) -> DeploymentTraffic:
    """Deployment ``name``'s traffic now; the caller has checked that they may see it."""
    now = time.time() if now is None else now
    versions, latency = _gateway(registry, name)
    total = sum(v.requests for v in versions)
    buckets = _buckets(latency)
    batches, rows, read = await _replica_batches(replica_urls)
    batch_count = batches[-1][1] if batches else 0.0
    return DeploymentTraffic(
        deployment=name,
        requests=total,
        request_rate=meter.rate(name, total, now),
        versions=versions,
        latency_p50=quantile(0.5, buckets),
        latency_p95=quantile(0.95, buckets),
        latency_p99=quantile(0.99, buckets),
        batch_mean=rows / batch_count if batch_count else None,
        batch_p95=quantile(0.95, batches),
        replicas_read=read,
    )
