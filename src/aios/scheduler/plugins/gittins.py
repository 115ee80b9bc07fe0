"""The ``learned`` policy's plugins: order and preempt by the Gittins index that a
:class:`~aios.scheduler.learning.ServiceHistory` learns from finished jobs.

Both read only the history (what finished jobs needed) and each job's attained service:
never a duration estimate, so the simulator's true durations cannot reach them.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aios.scheduler.job import Job, RunningJob
from aios.scheduler.learning import ServiceHistory
from aios.scheduler.plugins.preemption import select_victims

if TYPE_CHECKING:
    from aios.scheduler.state import ClusterState
    from aios.scheduler.workspace import Workspace

__all__ = ["KEY_EPOCH", "GittinsPreemption", "GittinsSort"]

KEY_EPOCH = 64
"""A running job's key is worked out again at least once per this many finished jobs."""


@dataclass(frozen=True)
class GittinsSort:
    """Lowest ``1 / Gittins index`` first (the GPU-seconds a completion is expected to
    cost, given the job's class and the service it has received): short classes and
    jobs near their class's typical end go first; least attained service first while
    the history knows nothing."""

    history: ServiceHistory = field(compare=False)
    name: str = "gittins"

    def order_key(self, job: Job) -> float:
        return self.history.key(job, job.attained_service)


@dataclass(frozen=True)
class GittinsPreemption:
    """A waiting job stops running jobs whose key, at the service they have received by
    now and less what stopping them costs (expected loss × GPUs), exceeds ``ratio``
    times its own; the highest first. The ratio keeps two jobs of similar keys from
    taking turns (each turn costs a restore and lost work)."""

    history: ServiceHistory = field(compare=False)
    ratio: float = 2.0
    name: str = "gittins-preemption"

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        need = self.ratio * self._key(job, ws.state)
        keys, ranked = self._ranking(ws, now)
        count = bisect_left(keys, -need)
        if not count:
            return ()
        # Within a cycle, a job of one shape that found no victims among a prefix of
        # the ranking finds none among a shorter prefix either.
        shape = (job.request, job.replicas, job.node_selector)
        failed = ws.memo.setdefault("gittins-failed", {})
        assert isinstance(failed, dict)
        if count <= failed.get(shape, 0):
            return ()
        victims = select_victims(job, ws, ranked[:count], None, count)
        if not victims:
            failed[shape] = count
        return victims

    def _key(self, job: Job, state: ClusterState) -> float:
        """The waiting job's key, kept while the history's answers hold (the same job
        asks again in every cycle until it starts)."""
        history = self.history
        # By the history itself too: a policy switched to afresh brings another one.
        version = (history, history.revision)
        memo = state.memo.get(self.name + ":waiting")
        if memo is None or memo[0] != version:
            memo = state.memo[self.name + ":waiting"] = (version, {})
        known = memo[1]
        assert isinstance(known, dict)
        found = known.get(job.id)
        if found is None or found[0] != job.attained_service:
            found = known[job.id] = (job.attained_service, history.key(job, job.attained_service))
        return float(found[1])

    def _ranking(self, ws: Workspace, now: float) -> tuple[list[float], list[RunningJob]]:
        """Running jobs by key at ``now`` less their preemption cost, highest first,
        with the negated figures as sort keys; brought up to date once a cycle (the
        state does not change within one) from the ranking the state keeps."""
        found = ws.memo.get(self.name)
        if found is None:
            state = ws.state
            known = state.memo.get(self.name + ":keys")
            keys = known[1] if known is not None else None
            if not isinstance(keys, _RunningKeys):
                keys = _RunningKeys()
                state.memo[self.name + ":keys"] = (None, keys)
            found = ws.memo[self.name] = keys.update(state, now, self.history)
        assert isinstance(found, tuple)
        return found


class _RunningKeys:
    """Each running job's preemption cost less its key, kept sorted while it runs: a key
    moves only when the job's attained service reaches the next level of a grid (at a
    time known in advance, :meth:`ServiceHistory.next_change`) or when the history has
    learned :data:`KEY_EPOCH` more jobs, so only those jobs, and the jobs that started or
    stopped, are worked out again."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[tuple[float, float, str], RunningJob]] = {}
        """By job id: its place in :attr:`order` and the run its key is for (a job that
        stopped and started again is another run, worked out again)."""
        self.by_queue: dict[str, set[str]] = {}
        """The ids in :attr:`entries` of each queue's jobs."""
        self.order: list[tuple[float, float, str]] = []
        """(cost less key, latest started first, id) of every entry, ascending."""
        self.keys: list[float] = []
        self.ranked: list[RunningJob] = []
        """Cost less key and the run of each place in :attr:`order`."""
        self.crossings: list[tuple[float, int, RunningJob]] = []
        """(when the job reaches its next level, a sequence number, the job), a heap. The
        run itself is kept so that a crossing left behind by a run that has stopped
        cannot be taken for a later run of the same job."""
        self._pushed = 0
        self.epoch = -1
        self.history: ServiceHistory | None = None
        """The history the keys are from (with :attr:`epoch`)."""
        self.alloc_version = -1
        """The state's ``alloc_version`` the entries were last compared with: while it
        holds, no job has started or stopped."""

    def update(
        self, state: ClusterState, now: float, history: ServiceHistory
    ) -> tuple[list[float], list[RunningJob]]:
        """Brings the entries up to ``now`` for the jobs running in ``state`` and returns
        the keys and the runs in order: lowest (cost less key) first, then latest
        started, then by id."""
        epoch = history.observed // KEY_EPOCH
        if epoch != self.epoch or history is not self.history:
            self.epoch = epoch
            self.history = history
            self._rebuild(state, now, history)
        elif state.alloc_version != self.alloc_version:
            self._follow(state, now, history)
        crossings = self.crossings
        entries = self.entries
        while crossings and crossings[0][0] <= now:
            crossing = heapq.heappop(crossings)[2]
            job_id = crossing.job.id
            entry = entries.get(job_id)
            if entry is not None and entry[1] is crossing:
                self._remove(job_id)
                self._insert(crossing, now, history)
        return self.keys[:], self.ranked[:]

    def _rebuild(self, state: ClusterState, now: float, history: ServiceHistory) -> None:
        """Works out every running job's key afresh (the history has moved on)."""
        self.entries.clear()
        self.by_queue.clear()
        self.crossings.clear()
        placed = [(self._work_out(run, now, history), run) for run in state.running.values()]
        placed.sort(key=_first)
        self.order = [place for place, _ in placed]
        self.keys = [place[0] for place in self.order]
        self.ranked = [run for _, run in placed]
        self.alloc_version = state.alloc_version

    def _follow(self, state: ClusterState, now: float, history: ServiceHistory) -> None:
        """Takes in the jobs started and stopped since the last look."""
        entries = self.entries
        running = state.running
        # The state keeps its running jobs in the order they started: those started since
        # the last look are at the end, up to the latest one already known.
        for run in reversed(running.values()):
            entry = entries.get(run.job.id)
            if entry is not None:
                if entry[1] is run:
                    break
                self._remove(run.job.id)
            self._insert(run, now, history)
        # The jobs that stopped are in the queues whose running jobs changed since.
        seen = self.alloc_version
        for queue, version in state.queue_alloc_version.items():
            if version > seen:
                known = self.by_queue.get(queue)
                if known:
                    # (a set less a dict looks each member up in the dict)
                    for gone in known.difference(state.running_by_queue.get(queue, {})):
                        self._remove(gone)
        self.alloc_version = state.alloc_version

    def _remove(self, job_id: str) -> None:
        place, run = self.entries.pop(job_id)
        self.by_queue[run.job.queue].discard(job_id)
        at = bisect_left(self.order, place)
        del self.order[at]
        del self.keys[at]
        del self.ranked[at]

    def _insert(self, running: RunningJob, now: float, history: ServiceHistory) -> None:
        place = self._work_out(running, now, history)
        at = bisect_left(self.order, place)
        self.order.insert(at, place)
        self.keys.insert(at, place[0])
        self.ranked.insert(at, running)

    def _work_out(
        self, running: RunningJob, now: float, history: ServiceHistory
    ) -> tuple[float, float, str]:
        """Enters ``running`` with its key at ``now`` and the time it next changes;
        returns its place (the caller puts it in :attr:`order`)."""
        job = running.job
        attained = running.attained(now)
        cost = job.preemption_cost
        loss = cost.expected_loss * running.service_rate if cost is not None else 0.0
        place = (loss - history.key(job, attained), -running.started, job.id)
        self.entries[job.id] = (place, running)
        known = self.by_queue.get(job.queue)
        if known is None:
            known = self.by_queue[job.queue] = set()
        known.add(job.id)
        change = history.next_change(job, attained)
        if change < math.inf and running.service_rate > 0:
            reach = running.started + ((change - job.attained_service) / running.service_rate)
            # Never at or before now: rounding must not bring the same job back at once.
            self._pushed += 1
            heapq.heappush(self.crossings, (max(reach, now + 1e-6), self._pushed, running))
        return place


def _first(pair: tuple[tuple[float, float, str], RunningJob]) -> tuple[float, float, str]:
    return pair[0]
