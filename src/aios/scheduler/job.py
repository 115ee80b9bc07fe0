"""Jobs as the scheduler sees them: what they ask for and where they stand."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from aios.errors import InvalidInput
from aios.resources import Allocation, Resources
from aios.scheduler.costs import PreemptionCost

__all__ = ["TERMINAL_STATES", "Job", "JobKind", "JobState", "RunningJob"]


class JobKind(StrEnum):
    BATCH = "batch"
    SERVICE = "service"


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UPSTREAM_FAILED = "upstream_failed"
    UNSCHEDULABLE = "unschedulable"


TERMINAL_STATES = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.UPSTREAM_FAILED,
        JobState.UNSCHEDULABLE,
    }
)


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of work waiting to be placed.

    ``request`` is per replica; ``replicas`` > 1 makes a gang whose replicas are placed
    all together or not at all. ``queued_at`` is when the job last entered its queue (its
    submit time, or the moment it was preempted and requeued); ``attained_service`` is the
    GPU-seconds (or core-seconds for CPU jobs) it has already run, which least-attained-
    service policies order by. ``duration_estimate`` and ``time_limit`` are seconds.
    ``preemption_cost`` is what stopping it costs (None: not known, taken as free).
    ``name`` is the job's name or command, which makes it like other jobs of its queue
    and size (policies that learn from history group jobs by it).
    """

    id: str
    request: Resources
    replicas: int = 1
    priority: int = 0
    queue: str = "default"
    submit_time: float = 0.0
    time_limit: float | None = None
    duration_estimate: float | None = None
    preemptible: bool = True
    dependencies: tuple[str, ...] = ()
    kind: JobKind = JobKind.BATCH
    queued_at: float | None = None
    attained_service: float = 0.0
    node_selector: tuple[tuple[str, str], ...] = field(default=())
    preemption_cost: PreemptionCost | None = None
    name: str = ""
    total: Resources = field(init=False, repr=False, compare=False)
    """What the whole gang asks for: the request times the replicas."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "total", self.request * self.replicas if self.replicas > 1 else self.request
        )
        if not self.id:
            raise InvalidInput("a job needs an id")
        if self.replicas < 1:
            raise InvalidInput(f"job {self.id}: replicas must be at least 1, got {self.replicas}")
        req = self.request
        if req.cpu < 0 or req.memory < 0 or req.gpus < 0 or any(v < 0 for _, v in req.custom):
            raise InvalidInput(f"job {self.id}: resource requests must not be negative")
        if self.time_limit is not None and self.time_limit <= 0:
            raise InvalidInput(f"job {self.id}: time_limit must be positive")
        if self.duration_estimate is not None and self.duration_estimate < 0:
            raise InvalidInput(f"job {self.id}: duration_estimate must not be negative")
        if self.id in self.dependencies:
            raise InvalidInput(f"job {self.id}: a job cannot depend on itself")

    @property
    def enqueued(self) -> float:
        """When the job entered its queue this time."""
        return self.submit_time if self.queued_at is None else self.queued_at

    @property
    def service_units(self) -> float:
        """Service units the whole job receives per second of running: its GPUs, or its
        cores for a CPU job."""
        units = self.request.gpus or max(self.request.cpu // 1000, 1)
        return float(units * self.replicas)

    @property
    def expected_runtime(self) -> float | None:
        """The best bound the scheduler has on how long one run lasts, or None."""
        if self.duration_estimate is not None:
            if self.time_limit is not None:
                return min(self.duration_estimate, self.time_limit)
            return self.duration_estimate
        return self.time_limit


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job that holds resources: one allocation per replica, since ``started``."""

    job: Job
    allocations: tuple[Allocation, ...]
    started: float
    expected_end: float | None = field(init=False)
    service_rate: float = field(init=False)
    """Service units received per second of running: GPUs of the gang, or its cores
    for a CPU job."""

    def __post_init__(self) -> None:
        runtime = self.job.expected_runtime
        object.__setattr__(
            self, "expected_end", None if runtime is None else self.started + runtime
        )
        object.__setattr__(self, "service_rate", self.job.service_units)

    @property
    def end_order(self) -> tuple[float, float]:
        """Sorts running jobs by when they are expected to end, unknown ends last."""
        end = self.expected_end
        return (math.inf if end is None else end, self.started)

    def attained(self, now: float) -> float:
        """Service received so far, counting this run up to ``now``."""
        ran = now - self.started
        return self.job.attained_service + (self.service_rate * ran if ran > 0 else 0.0)
