"""Prometheus metrics of an inference server, per model and version, on its own registry.

Requests, errors (by HTTP status), request latency, requests in flight (what the
autoscaler reads), and, from the batcher, rows per batch and time spent in the queue.
The labelled children of one model version are made once, when it is added, so the
request path does not look labels up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from aios.serving.batching import BatchRecord

__all__ = ["ModelMetrics", "ServingMetrics"]

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


@dataclass
class ModelMetrics:
    """The metrics of one model version; the server and its batcher report here."""

    family: ServingMetrics
    labels: tuple[str, str]
    requests: Counter = field(init=False)
    latency: Histogram = field(init=False)
    in_flight: Gauge = field(init=False)
    batch_size: Histogram = field(init=False)
    queue_seconds: Histogram = field(init=False)

    def __post_init__(self) -> None:
        family, labels = self.family, self.labels
        self.requests = family.requests.labels(*labels)
        self.latency = family.latency.labels(*labels)
        self.in_flight = family.in_flight.labels(*labels)
        self.batch_size = family.batch_size.labels(*labels)
        self.queue_seconds = family.queue_seconds.labels(*labels)

    def error(self, status: int) -> None:
        self.family.errors.labels(*self.labels, str(status)).inc()

    def observe_batch(self, record: BatchRecord) -> None:
        """A :class:`~aios.serving.batching.BatchObserver`."""
        self.batch_size.observe(record.rows)
        for seconds in record.queue_seconds:
            self.queue_seconds.observe(seconds)


class ServingMetrics:
    """The registry ``/metrics`` serves and the metric families in it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model", "version"]
        self.requests = Counter(
            "aios_inference_requests",
            "Inference requests received.",
            labels,
            registry=self.registry,
        )
        self.errors = Counter(
            "aios_inference_errors",
            "Inference requests answered with an error.",
            [*labels, "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aios_inference_request_seconds",
            "Time from receiving a request to answering it.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "aios_inference_in_flight",
            "Requests received and not yet answered.",
            labels,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "aios_inference_batch_size",
            "Rows in each batch the model ran.",
            labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "aios_inference_queue_seconds",
            "Time a request waited for its batch to start.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def model(self, name: str, version: str) -> ModelMetrics:
        return ModelMetrics(self, (name, version))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
