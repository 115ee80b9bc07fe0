"""Prometheus metrics of an inference server, per model and version, on its own registry.

Requests, errors (by HTTP status), requests shed (refused on their head, before their
body was read, because the model's queue was full), request latency, requests in flight (what the
autoscaler reads), and, from the batcher, rows per batch and time spent in the queue.

A request updates plain numbers of its :class:`ModelMetrics`, and :class:`ServingMetrics`
turns them into metric families only when ``/metrics`` is read: prometheus_client's
``Counter.inc`` and ``Histogram.observe`` take a lock and check the metric on every
call, which cost a small model's request more than the rest of its bookkeeping. Every
update happens on the server's event loop (requests and batch observers alike), so the
numbers need no lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from aios.serving.batching import BatchRecord

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS", "Buckets", "ModelMetrics", "ServingMetrics"]

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


@dataclass(slots=True)
class Buckets:
    """A histogram's numbers: how many observations fell at or under each bound (the
    last count is over every bound), and their sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0
    _les: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)
        self._les = (*(repr(float(bound)) for bound in self.bounds), "+Inf")

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count at or under le)`` pairs, ``+Inf`` last, as the exposition has them."""
        pairs = []
        running = 0
        for le, count in zip(self._les, self.counts, strict=True):
            running += count
            pairs.append((le, float(running)))
        return pairs


@dataclass(slots=True, eq=False)
class ModelMetrics:
    """The metrics of one model version; the server and its batcher report here.

    ``requests`` counts requests received, ``in_flight`` those not yet answered, and
    ``shed`` those refused on their head (also among ``requests`` and the 503 errors).
    """

    labels: tuple[str, str]
    requests: int = 0
    in_flight: int = 0
    shed: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    latency: Buckets = field(default_factory=lambda: Buckets(LATENCY_BUCKETS))
    batch_size: Buckets = field(default_factory=lambda: Buckets(BATCH_BUCKETS))
    queue_seconds: Buckets = field(default_factory=lambda: Buckets(LATENCY_BUCKETS))

    def error(self, status: int) -> None:
        self.errors[status] = self.errors.get(status, 0) + 1

    def observe_batch(self, record: BatchRecord) -> None:
        """A :class:`~aios.serving.batching.BatchObserver`."""
        self.batch_size.observe(record.rows)
        for seconds in record.queue_seconds:
            self.queue_seconds.observe(seconds)


_LABELS = ["model", "version"]


class ServingMetrics:
    """The registry ``/metrics`` serves, and the collector of every model version's
    numbers in it. A version that is removed and served again counts on."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._models: dict[tuple[str, str], ModelMetrics] = {}
        self.registry.register(self)

    def model(self, name: str, version: str) -> ModelMetrics:
        """The metrics of ``name:version``, made on first use."""
        labels = (name, version)
        metrics = self._models.get(labels)
        if metrics is None:
            metrics = self._models[labels] = ModelMetrics(labels)
        return metrics

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """The metric families, from the numbers as they are now (prometheus_client's
        collector protocol)."""
        requests = CounterMetricFamily(
            "aios_inference_requests", "Inference requests received.", labels=_LABELS
        )
        errors = CounterMetricFamily(
            "aios_inference_errors",
            "Inference requests answered with an error.",
            labels=[*_LABELS, "code"],
        )
        latency = HistogramMetricFamily(
            "aios_inference_request_seconds",
            "Time from receiving a request to answering it.",
            labels=_LABELS,
        )
        shed = CounterMetricFamily(
            "aios_inference_shed",
            "Inference requests refused (503) on their head, unread, as the queue was full.",
            labels=_LABELS,
        )
        in_flight = GaugeMetricFamily(
            "aios_inference_in_flight", "Requests received and not yet answered.", labels=_LABELS
        )
        batch_size = HistogramMetricFamily(
            "aios_inference_batch_size", "Rows in each batch the model ran.", labels=_LABELS
        )
        queue_seconds = HistogramMetricFamily(
            "aios_inference_queue_seconds",
            "Time a request waited for its batch to start.",
            labels=_LABELS,
        )
        for labels, metrics in self._models.items():
            values = list(labels)
            requests.add_metric(values, metrics.requests)
            for status, count in sorted(metrics.errors.items()):
                errors.add_metric([*values, str(status)], count)
            shed.add_metric(values, metrics.shed)
            in_flight.add_metric(values, metrics.in_flight)
            for family, buckets in (
                (latency, metrics.latency),
                (batch_size, metrics.batch_size),
                (queue_seconds, metrics.queue_seconds),
            ):
                family.add_metric(values, buckets.cumulative(), buckets.total)
        yield from (requests, errors, shed, latency, in_flight, batch_size, queue_seconds)
