"""Post-filter plugins: which running jobs to stop so that a waiting one fits.

All of them share one search (after kube-scheduler's DefaultPreemption): take the
eligible victims least valuable first, free them one by one in the cycle's view until
the job fits, then give back every victim the job turns out not to need (most valuable
first). The victims' resources stay held in this cycle; the job starts in a later one,
once they have stopped.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aios.scheduler.job import Job, RunningJob
from aios.scheduler.plugins.ordering import las_level
from aios.scheduler.queue import Queue, is_borrowing

if TYPE_CHECKING:
    from aios.scheduler.workspace import Workspace

__all__ = ["LasPreemption", "PriorityPreemption", "ReclaimPreemption", "select_victims"]


def select_victims(
    job: Job,
    ws: Workspace,
    ranked: Sequence[RunningJob],
    eligible: Callable[[RunningJob], bool],
    rank_of_job: object,
) -> tuple[RunningJob, ...]:
    """Returns a minimal-ish set of running jobs from ``ranked`` (least valuable first)
    whose preemption lets ``job`` fit, or ``()`` if no set of eligible victims would.
    Leaves ``ws`` as it found it.

    ``rank_of_job`` is what ``eligible`` depends on (a priority, a level): once a job of
    one shape and rank found no victims, another of the same shape and rank finds none
    later in the same cycle either, since victims only get fewer, so it is not tried.
    """
    failed = ws.memo.setdefault("preemption-failed", set())
    assert isinstance(failed, set)
    key = (job.request, job.replicas, job.node_selector, rank_of_job)
    if key in failed:
        return ()
    victims = _search(job, ws, ranked, eligible)
    if not victims:
        failed.add(key)
    return victims


def _search(
    job: Job,
    ws: Workspace,
    ranked: Sequence[RunningJob],
    eligible: Callable[[RunningJob], bool],
) -> tuple[RunningJob, ...]:
    candidates = [
        r for r in ranked if r.job.preemptible and r.job.id not in ws.victims and eligible(r)
    ]
    need = job.total.gpus
    if not candidates or (need and ws.free_gpus + sum(r.job.total.gpus for r in candidates) < need):
        return ()
    freed: list[RunningJob] = []
    for running in candidates:
        ws.unbind(running)
        freed.append(running)
        if ws.free_gpus >= need and ws.fits(job):
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


def ranked_running(
    ws: Workspace, name: str, least_valuable_first: Callable[[RunningJob], tuple[float, ...]]
) -> list[RunningJob]:
    """The jobs running at the start of the cycle, least valuable first, sorted once per
    cycle and plugin."""
    ranked = ws.memo.get(name)
    if ranked is None:
        ranked = ws.memo[name] = sorted(ws.state.running.values(), key=least_valuable_first)
    assert isinstance(ranked, list)
    return ranked


def _newest_first(running: RunningJob) -> float:
    return -running.started


@dataclass(frozen=True)
class PriorityPreemption:
    """Stops preemptible jobs of strictly lower priority, lowest priority and most
    recently started first (the least work lost)."""

    name: str = "priority-preemption"

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        ranked = ranked_running(ws, self.name, lambda r: (r.job.priority, _newest_first(r)))
        return select_victims(
            job, ws, ranked, lambda r: r.job.priority < job.priority, job.priority
        )


@dataclass(frozen=True)
class LasPreemption:
    """Tiresias: a job in a higher-priority (less served) level preempts jobs that have
    been demoted to a lower one, the most served first."""

    name: str = "las-preemption"
    thresholds: tuple[float, ...] = (3600.0, 8 * 3600.0)

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        level = las_level(job.attained_service, self.thresholds)
        if level >= len(self.thresholds):
            return ()  # already in the last level: nobody is demoted below it
        memo = ws.memo.get(self.name)
        if memo is None:
            # Most served first; the jobs above a level's threshold are then a prefix.
            served = sorted(
                (
                    (
                        -(r.job.attained_service + r.service_rate * max(now - r.started, 0.0)),
                        -r.started,
                        i,
                    )
                    for i, r in enumerate(ws.state.running.values())
                ),
            )
            running = list(ws.state.running.values())
            memo = ws.memo[self.name] = ([k[0] for k in served], [running[k[2]] for k in served])
        assert isinstance(memo, tuple)
        keys, ranked = memo
        demoted = ranked[: bisect_right(keys, -self.thresholds[level])]
        return select_victims(job, ws, demoted, lambda r: True, level)


@dataclass(frozen=True)
class ReclaimPreemption:
    """Kueue's preemption for queues with quotas: a queue that stays within its nominal
    quota takes it back from cohort members that borrow (most borrowed-from queue's
    newest work first), and within one queue a higher priority preempts a lower one."""

    name: str = "reclaim"

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        state = ws.state
        queue = state.queues[job.queue]
        own = ws.usage.get(queue.name, {})
        nominal = queue.nominal or {}
        within_nominal = queue.nominal is not None and all(
            own.get(resource, 0) + amount <= nominal[resource]
            for resource, amount in job.total.as_dict().items()
            if resource in nominal
        )
        by_queue = self._by_queue(ws)
        # Lenders: borrowing members of the cohort; and this queue's lower priorities.
        sources = (
            [name for name in self._borrowing(ws, queue) if name != queue.name]
            if within_nominal
            else []
        )
        ranked = [r for name in sources for r in by_queue.get(name, ())]
        ranked += [r for r in by_queue.get(queue.name, ()) if r.job.priority < job.priority]
        if not ranked:
            return ()
        lenders = frozenset(sources)

        def eligible(running: RunningJob) -> bool:
            if running.job.queue == queue.name:
                return running.job.priority < job.priority
            return running.job.queue in lenders and is_borrowing(
                state.queues[running.job.queue], ws.usage
            )

        ranked.sort(key=lambda r: (r.job.queue == job.queue, r.job.priority, _newest_first(r)))
        return select_victims(job, ws, ranked, eligible, (job.queue, job.priority, lenders))

    @staticmethod
    def _borrowing(ws: Workspace, queue: Queue) -> list[str]:
        """The members of ``queue``'s cohort that borrow now (memoised per usage)."""
        if queue.cohort is None:
            return []
        memo = ws.memo.setdefault("reclaim:borrowing", {})
        assert isinstance(memo, dict)
        cached = memo.get(queue.cohort)
        if cached is None or cached[0] != ws.usage_version:
            names = [q.name for q in ws.state.cohort_members(queue) if is_borrowing(q, ws.usage)]
            cached = memo[queue.cohort] = (ws.usage_version, names)
        borrowing: list[str] = cached[1]
        return borrowing

    def _by_queue(self, ws: Workspace) -> dict[str, list[RunningJob]]:
        """The jobs running at the start of the cycle, by queue (once per cycle)."""
        memo = ws.memo.get(self.name)
        if memo is None:
            grouped: dict[str, list[RunningJob]] = {}
            for running in ws.state.running.values():
                grouped.setdefault(running.job.queue, []).append(running)
            memo = ws.memo[self.name] = grouped
        assert isinstance(memo, dict)
        return memo
