"""The ``learned`` policy's plugins: order and preempt by the Gittins index that a
:class:`~aios.scheduler.learning.ServiceHistory` learns from finished jobs.

Both read only the history (what finished jobs needed) and each job's attained service:
never a duration estimate, so the simulator's true durations cannot reach them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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
            # A running job's key moves when it reaches the next level of the grid, or
            # when the history has learned a while: kept per job until either happens.
            known = state.memo.get(self.name + ":keys")
            epoch = history.observed // KEY_EPOCH
            keys = known[1] if known is not None and known[0] == epoch else None
            if not isinstance(keys, dict) or len(keys) > 4 * len(state.running) + 64:
                keys = {}
                state.memo[self.name + ":keys"] = (epoch, keys)
            scored: list[tuple[float, float, int]] = []
            running = list(state.running.values())
            for i, r in enumerate(running):
                attained = r.attained(now)
                level = bisect_right(LEVELS, attained)
                entry = keys.get(r.job.id)
                if entry is None or entry[0] != level or entry[1] is not r:
                    cost = r.job.preemption_cost
                    loss = cost.expected_loss * r.service_rate if cost is not None else 0.0
                    entry = keys[r.job.id] = (level, r, loss - history.key(r.job, attained))
                scored.append((entry[2], -r.started, i))
            scored.sort()
            ranking = ([s[0] for s in scored], [running[s[2]] for s in scored])
            memo = state.memo[self.name] = (version, ranking)
        found = memo[1]
        assert isinstance(found, tuple)
        return found
