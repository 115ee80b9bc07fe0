"""The ``learned`` policy's plugins: order and preempt by the Gittins index that a
:class:`~aios.scheduler.learning.ServiceHistory` learns from finished jobs.

Both read only the history (what finished jobs needed) and each job's attained service:
never a duration estimate, so the simulator's true durations cannot reach them.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aios.scheduler.job import Job, RunningJob
from aios.scheduler.learning import LEVELS, ServiceHistory
from aios.scheduler.plugins.preemption import select_victims

if TYPE_CHECKING:
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
        need = self.ratio * self.history.key(job, job.attained_service)
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
        victims = select_victims(job, ws, ranked[:count], lambda r: True, count)
        if not victims:
            failed[shape] = count
        return victims

    def _ranking(self, ws: Workspace, now: float) -> tuple[list[float], list[RunningJob]]:
        """Running jobs by key at ``now`` less their preemption cost, highest first,
        with the negated figures as sort keys; kept for the cycles of one instant while
        no job starts or stops."""
        state = ws.state
        history = self.history
        version = (state.alloc_version, now, history.observed)
        memo = state.memo.get(self.name)
        if memo is None or memo[0] != version:
            known = state.memo.get(self.name + ":keys")
            keys = known[1] if known is not None else None
            if not isinstance(keys, _RunningKeys):
                keys = _RunningKeys()
                state.memo[self.name + ":keys"] = (None, keys)
            entries = keys.update(state.running.values(), now, history)
            memo = state.memo[self.name] = (
                version,
                ([e[0] for e in entries], [e[3] for e in entries]),
            )
        found = memo[1]
        assert isinstance(found, tuple)
        return found


class _RunningKeys:
    """Each running job's preemption cost less its key, kept while it runs: a key moves
    only when the job's attained service reaches the next level of the grid (at a time
    known in advance) or when the history has learned :data:`KEY_EPOCH` more jobs, so
    only those jobs are worked out again."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[float, float, str, RunningJob]] = {}
        """By ``id`` of the RunningJob (held here, so the id stays its own)."""
        self.crossings: list[tuple[float, int, int, RunningJob]] = []
        """(when the job reaches its next level, a sequence number, its id, the job), a
        heap. The job itself is kept so that a crossing left behind by a job that has
        stopped cannot be taken for another that now has the same ``id``: that made a
        key move at a moment that depended on memory addresses (a replay whose decisions
        changed with what ran before it in the process)."""
        self._pushed = 0
        self.epoch = -1

    def update(
        self, running: Iterable[RunningJob], now: float, history: ServiceHistory
    ) -> list[tuple[float, float, str, RunningJob]]:
        """Brings the entries up to ``now`` for the jobs in ``running`` and returns them
        sorted: lowest (cost less key) first, then latest started, then by id."""
        current = {id(r): r for r in running}
        entries = self.entries
        epoch = history.observed // KEY_EPOCH
        if epoch != self.epoch:
            self.epoch = epoch
            entries.clear()
            self.crossings.clear()
        for gone in entries.keys() - current.keys():
            del entries[gone]
        for new in current.keys() - entries.keys():
            self._work_out(current[new], now, history)
        crossings = self.crossings
        while crossings and crossings[0][0] <= now:
            _, _, ident, crossing = heapq.heappop(crossings)
            found = entries.get(ident)
            if found is not None and found[3] is crossing:
                self._work_out(crossing, now, history)
        return sorted(entries.values())

    def _work_out(self, running: RunningJob, now: float, history: ServiceHistory) -> None:
        attained = running.attained(now)
        level = bisect_right(LEVELS, attained)
        cost = running.job.preemption_cost
        loss = cost.expected_loss * running.service_rate if cost is not None else 0.0
        key = history.key(running.job, attained)
        self.entries[id(running)] = (loss - key, -running.started, running.job.id, running)
        if level < len(LEVELS) and running.service_rate > 0:
            reach = running.started + (
                (LEVELS[level] - running.job.attained_service) / running.service_rate
            )
            # Never at or before now: rounding must not bring the same job back at once.
            self._pushed += 1
            heapq.heappush(
                self.crossings, (max(reach, now + 1e-6), self._pushed, id(running), running)
            )
