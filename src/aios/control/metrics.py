"""Prometheus metrics of the control plane, on its own registry.

Jobs by state and queue and the allocated vs. allocatable resources are read at scrape
time; the queue-wait histogram and the cycle duration are observed by the loop.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from aios.control.reconciler import Reconciler
from aios.scheduler import CycleResult
from aios.store import Database, JobRow

__all__ = ["ControlMetrics"]

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
CYCLE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _StateCollector(Collector):
    def __init__(self, db: Database, reconciler: Reconciler) -> None:
        self.db = db
        self.reconciler = reconciler

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("aios_jobs", "Jobs by state and queue.", labels=["state", "queue"])
        with self.db.sessions() as session:
            rows = session.execute(
                select(JobRow.state, JobRow.queue, func.count()).group_by(
                    JobRow.state, JobRow.queue
                )
            ).all()
        for job_state, queue, count in rows:
            jobs.add_metric([job_state, queue], count)
        yield jobs
        capacity = GaugeMetricFamily(
            "aios_resource_allocatable", "Allocatable resources of all nodes.", labels=["resource"]
        )
        allocated = GaugeMetricFamily(
            "aios_resource_allocated", "Resources held by running jobs.", labels=["resource"]
        )
        view = self.reconciler.view()
        total, used = view.capacity, view.allocated
        for family, amounts in ((capacity, total), (allocated, used)):
            family.add_metric(["cpu"], amounts.cpu / 1000)
            family.add_metric(["memory"], amounts.memory)
            family.add_metric(["gpu"], amounts.gpus)
            yield family


class ControlMetrics:
    """The registry ``/metrics`` serves."""

    def __init__(self, db: Database, reconciler: Reconciler) -> None:
        self.registry = CollectorRegistry()
        self.queue_wait = Histogram(
            "aios_queue_wait_seconds",
            "Time from entering a queue to starting.",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.cycle_seconds = Histogram(
            "aios_scheduler_cycle_seconds",
            "Duration of one scheduling cycle.",
            buckets=CYCLE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(db, reconciler))
        reconciler.stats.observers.append(self.observe)

    def observe(self, now: float, duration: float, result: CycleResult) -> None:
        self.cycle_seconds.observe(duration)
        for bind in result.binds:
            self.queue_wait.labels(bind.job.queue).observe(max(now - bind.job.enqueued, 0.0))
