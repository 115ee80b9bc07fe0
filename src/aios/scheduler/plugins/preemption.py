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
    import numpy as np
    from numpy.typing import NDArray

    from aios.scheduler.state import ClusterState
    from aios.scheduler.workspace import Workspace

__all__ = [
    "LasPreemption",
    "PriorityPreemption",
    "ReclaimPreemption",
    "SrtfPreemption",
    "select_victims",
]


def select_victims(
    job: Job,
    ws: Workspace,
    ranked: Sequence[RunningJob],
    eligible: Callable[[RunningJob], bool] | None,
    rank_of_job: object,
) -> tuple[RunningJob, ...]:
    """Returns a minimal-ish set of running jobs from ``ranked`` (least valuable first)
    whose preemption lets ``job`` fit, or ``()`` if no set of eligible victims would.
    Leaves ``ws`` as it found it. ``eligible`` None: every preemptible job in ``ranked``
    is.

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
    eligible: Callable[[RunningJob], bool] | None,
) -> tuple[RunningJob, ...]:
    stopping = ws.victims
    candidates = [
        r
        for r in ranked
        if r.job.preemptible and r.job.id not in stopping and (eligible is None or eligible(r))
    ]
    need = job.total.gpus
    if not candidates or (need and ws.free_gpus + sum(r.job.total.gpus for r in candidates) < need):
        return ()
    if not _gpus_could_hold(job, ws, candidates):
        return ()
    # Room counts say after which victim one replica, and all of them, could first fit.
    # Before all could, the job does not fit (the counts are exact), so a search whose
    # candidates never make room enough ends here, the view untouched; before one could,
    # trying it takes and gives back nothing, so it need not be tried.
    scan = RoomScan(ws, job)
    some = -1
    for i, running in enumerate(candidates):
        scan.release(running)
        if some < 0 and scan.any_room():
            some = i
        if scan.enough() >= 0:
            break
    else:
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


def _gpus_could_hold(job: Job, ws: Workspace, candidates: Sequence[RunningJob]) -> bool:
    """Whether, on GPUs alone, the nodes could hold every replica of ``job`` once all
    ``candidates`` have stopped: a necessary condition for the room scan, counted per
    node from the index's buckets and the candidates' allocations, far cheaper than the
    scan when (as for most whole-node gangs) the answer is no."""
    per = job.request.gpus
    if not per:
        return True
    levels = ws.index.levels
    kind = job.request.gpu_kind
    replicas = job.replicas
    node = ws.node
    for gpu_kind in (kind,) if kind is not None else ws.index.gpu_kinds:
        by_level = levels.get(gpu_kind)
        if by_level is None:
            continue
        slots = sum(len(by_level[level]) * (level // per) for level in range(per, len(by_level)))
        if slots >= replicas:
            return True
        freed: dict[str, int] = {}
        before = freed.get
        for running in candidates:
            for allocation in running.allocations:
                if allocation.gpu_kind == gpu_kind:
                    more = len(allocation.gpus)
                    if more:
                        name = allocation.node
                        freed[name] = before(name, 0) + more
        for name, more in freed.items():
            free = len(node(name).free_gpus.get(gpu_kind, ()))
            slots += (free + more) // per - free // per
            if slots >= replicas:  # each node only adds
                return True
    return False


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
        return select_victims(job, ws, demoted, None, level)


@dataclass(frozen=True)
class SrtfPreemption:
    """Shortest remaining time first, preemptive: a waiting job stops running jobs whose
    remaining service (GPU-seconds to their expected end) exceeds its own by more than
    what stopping them costs (their expected loss, see
    :attr:`PreemptionCost.expected_loss`, times their GPUs), the most remaining first.
    ``key`` gives the waiting job's remaining service (the policy's queue order)."""

    name: str = "srtf-preemption"

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        need = job.service_units * (job.expected_runtime or math.inf)
        if need == math.inf:
            return ()
        # A job of one shape that found no victims makes every later one of that shape
        # that needs as much or more find none either, while the same jobs run: the
        # eligible victims only shrink as time passes and as the need grows.
        state = ws.state
        version = (state.alloc_version, len(state.preempting))
        shape = (job.request, job.replicas, job.node_selector)
        failures = state.memo.get("srtf-failed")
        if failures is None or failures[0] != version:
            failures = state.memo["srtf-failed"] = (version, {})
        failed = failures[1]
        assert isinstance(failed, dict)
        if need >= failed.get(shape, math.inf):
            return ()
        keys, order, runs = self._ranking(ws, now)
        # Strictly more remaining than the job needs, after the cost of stopping them:
        # a prefix of the ranking.
        count = int(keys.searchsorted(-need, side="left"))
        victims = (
            select_victims(job, ws, [runs[i] for i in order[:count]], None, count) if count else ()
        )
        if not victims:
            failed[shape] = min(need, failed.get(shape, math.inf))
        return victims

    def _ranking(
        self, ws: Workspace, now: float
    ) -> tuple[NDArray[np.float64], NDArray[np.intp], list[RunningJob]]:
        """The running jobs with a known end by remaining service less the cost of
        stopping them, most first: the negated figures ascending (the sort keys), the
        order (indices into the runs) and the runs; ties by latest start, then by when
        they started running here. Kept for the cycles of one instant while no job
        starts or stops."""
        import numpy as np  # here, not at the top: the CLI imports the scheduler, not numpy

        state = ws.state
        version = (state.alloc_version, now)
        memo = state.memo.get(self.name)
        if memo is None or memo[0] != version:
            # (end - cost, GPUs, -start) per running job, rebuilt when one starts or stops:
            # at ``now`` its margin is (end - cost - now) × GPUs.
            known = state.memo.get(self.name + ":ends")
            columns = known[1] if known is not None else None
            if not isinstance(columns, _Ends):
                columns = _Ends()
                state.memo[self.name + ":ends"] = (None, columns)
            columns.update(state)
            margins = (now - columns.costs) * columns.rates
            order = np.lexsort((columns.starts, margins))  # stable: ties keep their index
            memo = state.memo[self.name] = (version, (margins[order], order, columns.runs))
        found = memo[1]
        assert isinstance(found, tuple)
        return found


class _Ends:
    """Per running job with a known end, in the order the jobs were bound, as columns:
    its end less its expected preemption cost, its service rate, its negated start, and
    the run itself; kept up to date with the jobs that started or stopped since the last
    look (the state keeps its running jobs in the order they were bound)."""

    __slots__ = ("alloc_version", "costs", "ids", "rates", "runs", "seen", "starts")

    def __init__(self) -> None:
        import numpy as np

        self.alloc_version = -1
        self.seen: dict[str, RunningJob] = {}
        """Every running job looked at, by id, known end or not."""
        self.ids: list[str] = []
        self.runs: list[RunningJob] = []
        self.costs: NDArray[np.float64] = np.empty(0)
        self.rates: NDArray[np.float64] = np.empty(0)
        self.starts: NDArray[np.float64] = np.empty(0)

    def update(self, state: ClusterState) -> None:
        import numpy as np

        if state.alloc_version == self.alloc_version:
            return
        self.alloc_version = state.alloc_version
        running, seen = state.running, self.seen
        new: list[RunningJob] = []
        for run in reversed(running.values()):
            known = seen.get(run.job.id)
            if known is run:
                break
            if known is not None:
                self._forget(run.job.id)
            new.append(run)
        if len(seen) + len(new) > len(running):
            for gone in seen.keys() - running.keys():
                self._forget(gone)
        added: list[tuple[float, float, float]] = []
        for run in reversed(new):
            seen[run.job.id] = run
            end = run.expected_end
            if end is None:
                continue  # nothing known about when it ends: never worth stopping
            cost = run.job.preemption_cost
            loss = cost.expected_loss if cost is not None else 0.0
            added.append((end - loss, run.service_rate, -run.started))
            self.ids.append(run.job.id)
            self.runs.append(run)
        if added:
            costs, rates, starts = zip(*added, strict=True)
            self.costs = np.concatenate((self.costs, costs))
            self.rates = np.concatenate((self.rates, rates))
            self.starts = np.concatenate((self.starts, starts))

    def _forget(self, job_id: str) -> None:
        import numpy as np

        run = self.seen.pop(job_id)
        if run.expected_end is None:
            return
        at = self.ids.index(job_id)
        del self.ids[at]
        del self.runs[at]
        self.costs = np.delete(self.costs, at)
        self.rates = np.delete(self.rates, at)
        self.starts = np.delete(self.starts, at)


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
