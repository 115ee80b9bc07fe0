"""The quota plugin: admits a job only within its queue's nominal quota plus what it may
borrow from its cohort (Kueue's ClusterQueue admission)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aios.scheduler.framework import SUCCESS, Code, Status
from aios.scheduler.job import Job
from aios.scheduler.queue import Queue, QuotaCheck, check_quota, cohort_totals

if TYPE_CHECKING:
    from aios.scheduler.workspace import Workspace

__all__ = ["Quota"]

_NONE: dict[str, int] = {}
_KEPT_VERDICTS = 4096
"""At most this many verdicts are kept: a long-lived state sees ever new usage."""


@dataclass(frozen=True)
class Quota:
    name: str = "quota"

    def pre_filter(self, job: Job, ws: Workspace) -> Status:
        # A verdict depends on the queues' configuration and, for each resource the quota
        # names, on the job's amount, the queue's usage and its cohort's usage: it is
        # kept under those numbers, across cycles, until a queue changes.
        queue = ws.state.queues.get(job.queue)
        if queue is None or queue.nominal is None:
            return self._check(job, ws)
        total = job.total
        if total.custom:
            named = total.as_dict()
            amounts = tuple([named.get(resource, 0) for resource in queue.nominal])
        else:
            amounts = tuple([total.get(resource) for resource in queue.nominal])
        numbers = self._usage_numbers(ws, queue)
        key = (queue.name, amounts, numbers)
        verdicts = ws.state.derived_from_queues.setdefault("quota-verdicts", {})
        verdict = verdicts.get(key)
        if verdict is None:
            if len(verdicts) >= _KEPT_VERDICTS:
                verdicts.clear()
            within = _well_within(ws, queue, amounts, numbers)
            verdict = verdicts[key] = SUCCESS if within else self._check(job, ws)
        assert isinstance(verdict, Status)
        return verdict

    def _usage_numbers(self, ws: Workspace, queue: Queue) -> tuple[int, ...]:
        """The queue's usage and its cohort's of each resource its quota names, as the
        view has them now (worked out once per usage change)."""
        memo = ws.memo.get(self.name)
        if memo is None:
            memo = ws.memo[self.name] = {}
        assert isinstance(memo, dict)
        known = memo.get(queue.name)
        if known is not None and known[0] == ws.usage_version:
            numbers: tuple[int, ...] = known[1]
            return numbers
        assert queue.nominal is not None
        own = ws.usage.get(queue.name, _NONE)
        cohort = _NONE if queue.cohort is None else ws.cohort_usage(queue.cohort)
        found: list[int] = []
        for resource in queue.nominal:
            found += (own.get(resource, 0), cohort.get(resource, 0))
        numbers = tuple(found)
        memo[queue.name] = (ws.usage_version, numbers)
        return numbers

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
            quotas = ws.state.derived_from_queues.setdefault("cohort-quota", {})
            quota = quotas.get(queue.cohort)
            if quota is None:
                quota = quotas[queue.cohort] = cohort_totals(members, {})[0]
            assert isinstance(quota, dict)
            totals = (quota, ws.cohort_usage(queue.cohort))
        verdict = check_quota(queue, job.total, ws.usage, members, totals)
        if verdict.ok:
            return SUCCESS
        return Status(Code.WAIT, f"queue {queue.name}: {verdict.reason}")


def _well_within(
    ws: Workspace, queue: Queue, amounts: tuple[int, ...], numbers: tuple[int, ...]
) -> bool:
    """Whether ``amounts`` (per resource the quota names) fit ``queue``'s quota at the
    usage ``numbers`` (the queue's and its cohort's, per resource), by the rules of
    :func:`check_quota`: within nominal, or borrowing within the limit and, in a cohort,
    within the cohort's idle quota. Answers a passing verdict without its reasons."""
    assert queue.nominal is not None
    cohort_quota: dict[str, int] | None = None
    if queue.cohort is not None:
        quotas = ws.state.derived_from_queues.setdefault("cohort-quota", {})
        found = quotas.get(queue.cohort)
        if found is None:
            members = ws.state.cohort_members(queue)
            found = quotas[queue.cohort] = cohort_totals(members, {})[0]
        assert isinstance(found, dict)
        cohort_quota = found
    for i, (resource, quota) in enumerate(queue.nominal.items()):
        amount = amounts[i]
        if not amount:
            continue
        wanted = numbers[2 * i] + amount
        if cohort_quota is None:
            if wanted > quota:
                return False
            continue
        if wanted > quota:
            limit = queue.borrowing_limit.get(resource)
            if limit is not None and wanted - quota > limit:
                return False
        if numbers[2 * i + 1] + amount > cohort_quota.get(resource, 0):
            return False
    return True
