"""The quota plugin: admits a job only within its queue's nominal quota plus what it may
borrow from its cohort (Kueue's ClusterQueue admission)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aios.scheduler.framework import SUCCESS, Code, Status
from aios.scheduler.job import Job
from aios.scheduler.queue import QuotaCheck, check_quota, cohort_totals

if TYPE_CHECKING:
    from aios.scheduler.workspace import Workspace

__all__ = ["Quota"]


@dataclass(frozen=True)
class Quota:
    name: str = "quota"

    def pre_filter(self, job: Job, ws: Workspace) -> Status:
        # Memoised per cycle until usage changes: many jobs of one size wait on one queue.
        memo = ws.memo.setdefault(self.name, {})
        assert isinstance(memo, dict)
        key = (job.queue, job.total)
        cached = memo.get(key)
        if cached is not None and cached[0] == ws.usage_version:
            verdict: Status = cached[1]
            return verdict
        verdict = self._check(job, ws)
        memo[key] = (ws.usage_version, verdict)
        return verdict

    @staticmethod
    def _check(job: Job, ws: Workspace) -> Status:
        queue = ws.state.queues.get(job.queue)
        if queue is None:
            return Status(Code.UNRESOLVABLE, f"no queue named {job.queue!r}")
        if queue.nominal is None:
            return SUCCESS
        members = ws.state.cohort_members(queue)
        # Could it ever be admitted, with the queue and its cohort otherwise empty?
        ceilings = ws.state.derived_from_queues.setdefault("quota-ceiling", {})
        ceiling = ceilings.get((queue.name, job.total))
        if ceiling is None:
            ceiling = ceilings[(queue.name, job.total)] = check_quota(queue, job.total, {}, members)
        assert isinstance(ceiling, QuotaCheck)
        if not ceiling.ok:
            return Status(Code.UNRESOLVABLE, f"queue {queue.name}: {ceiling.reason}")
        totals = None
        if queue.cohort is not None:
            memo = ws.memo.setdefault("quota-cohorts", {})
            assert isinstance(memo, dict)
            cached = memo.get(queue.cohort)
            if cached is None or cached[0] != ws.usage_version:
                cached = memo[queue.cohort] = (ws.usage_version, cohort_totals(members, ws.usage))
            totals = cached[1]
        verdict = check_quota(queue, job.total, ws.usage, members, totals)
        if verdict.ok:
            return SUCCESS
        return Status(Code.WAIT, f"queue {queue.name}: {verdict.reason}")
