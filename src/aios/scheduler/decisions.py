"""What a scheduling cycle decides: start a job, stop one, or give one up."""

from __future__ import annotations

from dataclasses import dataclass, field

from aios.resources import Allocation
from aios.scheduler.job import Job, RunningJob

__all__ = ["Bind", "CycleResult", "Decision", "Preempt", "Unschedulable", "UpstreamFailed"]


@dataclass(frozen=True, slots=True)
class Bind:
    """Start ``job`` with one allocation per replica."""

    job: Job
    allocations: tuple[Allocation, ...]
    backfilled: bool = False


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop running job ``victim`` so that ``preemptor`` can start in a later cycle."""

    victim: RunningJob
    preemptor: str
    reason: str


@dataclass(frozen=True, slots=True)
class UpstreamFailed:
    """``job_id`` will never run: its dependency ``parent`` did not succeed."""

    job_id: str
    parent: str


@dataclass(frozen=True, slots=True)
class Unschedulable:
    """``job_id`` can never fit this cluster (or its queue's quota) as it is."""

    job_id: str
    reason: str


Decision = Bind | Preempt | UpstreamFailed | Unschedulable


@dataclass(slots=True)
class CycleResult:
    decisions: list[Decision] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    """Why a job the cycle looked at stays pending, in words."""
    considered: int = 0

    @property
    def binds(self) -> list[Bind]:
        return [d for d in self.decisions if isinstance(d, Bind)]

    @property
    def preemptions(self) -> list[Preempt]:
        return [d for d in self.decisions if isinstance(d, Preempt)]
