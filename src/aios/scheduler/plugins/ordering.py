"""Queue-sort and fair-share plugins: in what order pending jobs are served."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aios.resources import CPU, GPU, MEMORY
from aios.scheduler.job import Job

if TYPE_CHECKING:
    from aios.scheduler.workspace import Workspace

__all__ = [
    "DominantShare",
    "FifoSort",
    "LasSort",
    "PrioritySort",
    "SjfSort",
    "SrtfSort",
    "las_level",
]


@dataclass(frozen=True)
class FifoSort:
    """First come, first served: by the time the job entered its queue."""

    name: str = "fifo"

    def order_key(self, job: Job) -> float:
        return job.enqueued


@dataclass(frozen=True)
class PrioritySort:
    """Highest priority first; among equals, oldest first. Waiting ages a job: each
    ``age_per_priority`` seconds in the queue count as one priority point, as the age
    factor of Slurm's multifactor priority does, so low priorities do not starve."""

    name: str = "priority"
    age_per_priority: float = 3600.0

    def order_key(self, job: Job) -> float:
        return job.enqueued / self.age_per_priority - job.priority


@dataclass(frozen=True)
class SjfSort:
    """Shortest expected run first (duration estimate, else time limit, else
    ``default_runtime``). A second waited takes ``aging`` seconds off the estimate, so a
    long job is served once it has waited about as long as it will run."""

    name: str = "sjf"
    default_runtime: float = 24 * 3600.0
    aging: float = 1.0

    def order_key(self, job: Job) -> float:
        runtime = job.expected_runtime
        return (self.default_runtime if runtime is None else runtime) + self.aging * job.enqueued


@dataclass(frozen=True)
class SrtfSort:
    """Shortest remaining service first: the GPU-seconds (core-seconds for a CPU job)
    the job's next run needs, its duration estimate times its GPUs; unknown estimates
    last. With the simulator's true durations this is the clairvoyant order; a
    requeued job's estimate is what it has left (and its restore)."""

    name: str = "srtf"

    def order_key(self, job: Job) -> float:
        runtime = job.expected_runtime
        return math.inf if runtime is None else runtime * job.service_units


def las_level(attained: float, thresholds: tuple[float, ...]) -> int:
    """The Tiresias queue of a job that received ``attained`` GPU-seconds: 0 below the
    first threshold, 1 below the second, and so on."""
    level = 0
    for threshold in thresholds:
        if attained < threshold:
            break
        level += 1
    return level


@dataclass(frozen=True)
class LasSort:
    """Discretized least-attained-service (Tiresias, NSDI 2019): jobs that have received
    less GPU time go first, in levels split at ``thresholds`` GPU-seconds, FIFO within a
    level. Needs no duration estimate. A level counts as ``level_delay`` seconds of later
    arrival, so a demoted job overtakes fresh ones once it has waited that long per level
    (Tiresias's starvation promotion, written as a fixed order)."""

    name: str = "las"
    thresholds: tuple[float, ...] = (3600.0, 8 * 3600.0)
    level_delay: float = 8 * 3600.0

    def order_key(self, job: Job) -> float:
        return las_level(job.attained_service, self.thresholds) * self.level_delay + job.enqueued


@dataclass(frozen=True)
class DominantShare:
    """Dominant Resource Fairness between queues: the queue whose largest share of any
    resource (cpu, memory, GPUs) of the cluster, divided by its weight, is smallest is
    served next."""

    name: str = "drf"

    def share(self, queue: str, ws: Workspace) -> float:
        version: object = ws.queue_versions.get(queue, 0)
        if version:
            # The queue's usage changed in this cycle: kept until it changes again.
            memo = ws.memo.setdefault(self.name, {})
        else:
            # Its usage is the state's: kept across cycles until its jobs or nodes change.
            state = ws.state
            memo = state.derived_from_queues.setdefault(self.name, {})
            version = (state.queue_alloc_version.get(queue, 0), state.node_version)
        assert isinstance(memo, dict)
        cached = memo.get(queue)
        if cached is not None and cached[0] == version:
            share: float = cached[1]
            return share
        share = self._share(queue, ws)
        memo[queue] = (version, share)
        return share

    @staticmethod
    def _share(queue: str, ws: Workspace) -> float:
        used = ws.usage.get(queue)
        if not used:
            return 0.0
        capacity = ws.capacity
        share = 0.0
        for resource, total in (
            (GPU, capacity.gpus),
            (CPU, capacity.cpu),
            (MEMORY, capacity.memory),
        ):
            if total:
                share = max(share, used.get(resource, 0) / total)
        weight = ws.state.queues[queue].weight if queue in ws.state.queues else 1.0
        return share / weight
