"""Post-filter plugins: which running jobs to stop so that a waiting one fits.

All of them share one search (after kube-scheduler's DefaultPreemption): take the
eligible victims least valuable first, free them one by one in the cycle's view until
the job fits, then give back every victim the job turns out not to need (most valuable
first). The victims' resources stay held in this cycle; the job starts in a later one,
once they have stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aios.scheduler.job import Job, RunningJob
from aios.scheduler.plugins.ordering import las_level
from aios.scheduler.queue import is_borrowing

if TYPE_CHECKING:
    from aios.scheduler.workspace import Workspace

__all__ = ["LasPreemption", "PriorityPreemption", "ReclaimPreemption", "select_victims"]


def select_victims(
    job: Job,
    ws: Workspace,
    eligible: Callable[[RunningJob], bool],
    least_valuable_first: Callable[[RunningJob], tuple[float, ...]],
) -> tuple[RunningJob, ...]:
    """Returns a minimal-ish set of running jobs whose preemption lets ``job`` fit, or
    ``()`` if no set of eligible victims would. Leaves ``ws`` as it found it."""
    candidates = sorted(
        (
            r
            for r in ws.state.running.values()
            if r.job.preemptible and r.job.id not in ws.victims and eligible(r)
        ),
        key=least_valuable_first,
    )
    if not candidates:
        return ()
    freed: list[RunningJob] = []
    for running in candidates:
        ws.unbind(running)
        freed.append(running)
        if ws.fits(job):
            break
    else:
        for running in reversed(freed):
            ws.rebind(running)
        return ()
    victims: list[RunningJob] = []
    for running in reversed(freed):
        ws.rebind(running)
        if not ws.fits(job):
            ws.unbind(running)
            victims.append(running)
    for running in victims:
        ws.rebind(running)
    return tuple(victims)


def _newest_first(running: RunningJob) -> float:
    return -running.started


@dataclass(frozen=True)
class PriorityPreemption:
    """Stops preemptible jobs of strictly lower priority, lowest priority and most
    recently started first (the least work lost)."""

    name: str = "priority-preemption"

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        return select_victims(
            job,
            ws,
            lambda r: r.job.priority < job.priority,
            lambda r: (r.job.priority, _newest_first(r)),
        )


@dataclass(frozen=True)
class LasPreemption:
    """Tiresias: a job in a higher-priority (less served) level preempts jobs that have
    been demoted to a lower one, the most served first."""

    name: str = "las-preemption"
    thresholds: tuple[float, ...] = (3600.0, 8 * 3600.0)

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        level = las_level(job.attained_service, self.thresholds)
        return select_victims(
            job,
            ws,
            lambda r: las_level(r.attained(now), self.thresholds) > level,
            lambda r: (-r.attained(now), _newest_first(r)),
        )


@dataclass(frozen=True)
class ReclaimPreemption:
    """Kueue's preemption for queues with quotas: a queue that stays within its nominal
    quota takes it back from cohort members that borrow (most borrowed-from queue's
    newest work first), and within one queue a higher priority preempts a lower one."""

    name: str = "reclaim"

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        queue = ws.state.queues[job.queue]
        own = ws.usage.get(queue.name, {})
        nominal = queue.nominal or {}
        within_nominal = queue.nominal is not None and all(
            own.get(resource, 0) + amount <= nominal[resource]
            for resource, amount in job.total.as_dict().items()
            if resource in nominal
        )

        def eligible(running: RunningJob) -> bool:
            victim_queue = ws.state.queues.get(running.job.queue)
            if victim_queue is None:
                return False
            if victim_queue.name == queue.name:
                return running.job.priority < job.priority
            return (
                within_nominal
                and victim_queue.cohort is not None
                and victim_queue.cohort == queue.cohort
                and is_borrowing(victim_queue, ws.usage)
            )

        return select_victims(
            job,
            ws,
            eligible,
            lambda r: (r.job.queue == job.queue, r.job.priority, _newest_first(r)),
        )
