"""Post-filter plugins: which running jobs to stop so that a waiting one fits.

All of them share one search (after kube-scheduler's DefaultPreemption): take the
eligible victims least valuable first, free them one by one in the cycle's view until
the job fits, then give back every victim the job turns out not to need (most valuable
first). The victims' resources stay held in this cycle; the job starts in a later one,
once they have stopped.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aios.resources import Resources
from aios.scheduler.job import Job, RunningJob
from aios.scheduler.plugins.ordering import las_level
from aios.scheduler.queue import Queue, is_borrowing
from aios.scheduler.room import RoomScan

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
    # Room counts say after which victim one replica, and all of them, could first fit.
    # Before all could, the job does not fit; before one could, trying it takes and gives
    # back nothing, so it need not be tried (a gang that places some replicas before it
    # fails does reorder the index, so from there on it is tried as ever).
    scan = RoomScan(ws, job)
    some = -1
    for i, running in enumerate(candidates):
        scan.release(running)
        if some < 0 and scan.any_room():
            some = i
        if scan.enough() >= 0:
            break
    else:
        if some < 0:
            ws.reorder_as_if_freed(candidates)
            return ()
    freed: list[RunningJob] = []
    for running in candidates[:some]:
        ws.unbind(running)
        freed.append(running)
    for running in candidates[some:]:
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
        queues = ws.state.running_by_queue
        if all(_lowest_priority(ws, queue) >= job.priority for queue in queues):
            return ()  # nothing of lower priority runs
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
        # Most served first; the jobs above a level's threshold are then a prefix. Kept
        # in the state for the cycles of one instant while no job starts or stops.
        state = ws.state
        version = (state.alloc_version, now)
        memo = state.memo.get(self.name)
        if memo is None or memo[0] != version:
            running = list(state.running.values())
            served = [
                (
                    -(r.job.attained_service + r.service_rate * max(now - r.started, 0.0)),
                    -r.started,
                    i,
                )
                for i, r in enumerate(running)
            ]
            served.sort()
            ranking = ([k[0] for k in served], [running[k[2]] for k in served])
            memo = state.memo[self.name] = (version, ranking)
        found = memo[1]
        assert isinstance(found, tuple)
        keys, ranked = found
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
        within_nominal, lowest = self._gate(ws, queue, job.total)
        if not within_nominal and lowest >= job.priority:
            return ()  # no lender to reclaim from, nothing of lower priority in the queue
        # Lenders: borrowing members of the cohort; and this queue's lower priorities.
        sources = (
            [name for name in self._borrowing(ws, queue) if name != queue.name]
            if within_nominal
            else []
        )
        by_queue = state.running_by_queue
        ranked = [r for name in sources for r in by_queue.get(name, {}).values()]
        ranked += [
            r for r in by_queue.get(queue.name, {}).values() if r.job.priority < job.priority
        ]
        if not ranked:
            return ()
        lenders = frozenset(sources)

        def eligible(running: RunningJob) -> bool:
            # Lenders are the cohort members borrowing now (victims are chosen before any
            # usage changes).
            if running.job.queue == queue.name:
                return running.job.priority < job.priority
            return running.job.queue in lenders

        ranked.sort(key=lambda r: (r.job.queue == job.queue, r.job.priority, _newest_first(r)))
        return select_victims(job, ws, ranked, eligible, (job.queue, job.priority, lenders))

    def _gate(self, ws: Workspace, queue: Queue, total: Resources) -> tuple[bool, float]:
        """Whether ``total`` more keeps ``queue`` within its nominal quota, and the lowest
        priority among its running jobs. What they rest on, the queue's room under its
        quota and that priority, is worked out once per queue and usage change."""
        memo = ws.memo.get(self.name)
        if memo is None:
            memo = ws.memo[self.name] = {}
        assert isinstance(memo, dict)
        known = memo.get(queue.name)
        if known is None or known[0] != ws.usage_version:
            room: tuple[tuple[str, int], ...] | None = None
            if queue.nominal is not None:
                own = ws.usage.get(queue.name, {})
                room = tuple((r, amount - own.get(r, 0)) for r, amount in queue.nominal.items())
            known = memo[queue.name] = (ws.usage_version, room, _lowest_priority(ws, queue.name))
        room, lowest = known[1], known[2]
        if room is None:
            return False, lowest
        amounts = total.as_dict() if total.custom else None
        for resource, left in room:
            amount = total.get(resource) if amounts is None else amounts.get(resource, 0)
            if amount > left and amount:
                return False, lowest
        return True, lowest

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


def _lowest_priority(ws: Workspace, queue: str) -> float:
    """The lowest priority among the jobs of ``queue`` running at the start of the cycle
    (infinite when none runs); kept in the state until the queue's running jobs change."""
    state = ws.state
    memo = state.memo.get("reclaim:lowest")
    if memo is None:
        memo = state.memo["reclaim:lowest"] = (None, {})
    lowest = memo[1]
    assert isinstance(lowest, dict)
    version = state.queue_alloc_version.get(queue, 0)
    found = lowest.get(queue)
    if found is None or found[0] != version:
        running = state.running_by_queue.get(queue, {})
        found = lowest[queue] = (
            version,
            min((r.job.priority for r in running.values()), default=math.inf),
        )
    priority: float = found[1]
    return priority
