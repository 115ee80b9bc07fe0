"""Queues (tenants) and their quotas, after Kueue's ClusterQueue and Cohort.

A queue has a nominal quota per resource. Queues in the same cohort lend each other the
quota they leave idle: a queue may use more than its nominal quota (borrow) while the
cohort as a whole stays within the sum of its members' nominal quotas, and up to its
borrowing limit. A lender gets its quota back by preempting borrowers (reclaim).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aios.errors import InvalidInput
from aios.resources import CPU, GPU, MEMORY, Resources

__all__ = ["Queue", "QuotaCheck", "Usage", "check_quota"]

Usage = dict[str, int]
"""Resource name (``cpu``, ``memory``, ``gpu`` or custom) → amount in use."""


@dataclass(frozen=True)
class Queue:
    """A tenant's queue.

    ``nominal`` maps resource names to the quota the queue owns; ``None`` means the queue
    has no quota at all (it may use anything). A resource a quota does not name is not
    limited. ``borrowing_limit`` caps how far above nominal the queue may go per resource
    (absent: no cap beyond the cohort's idle quota). ``weight`` scales its fair share.
    """

    name: str
    nominal: Mapping[str, int] | None = None
    weight: float = 1.0
    cohort: str | None = None
    borrowing_limit: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInput("a queue needs a name")
        if self.weight <= 0:
            raise InvalidInput(f"queue {self.name}: weight must be positive, got {self.weight}")
        for label, amounts in (
            ("nominal", self.nominal or {}),
            ("borrowing_limit", self.borrowing_limit),
        ):
            for resource, amount in amounts.items():
                if amount < 0:
                    raise InvalidInput(
                        f"queue {self.name}: {label} {resource} must not be negative"
                    )


@dataclass(frozen=True, slots=True)
class QuotaCheck:
    """The verdict of :func:`check_quota`: ``ok``, or the reason it is not, and whether the
    admission would make the queue borrow."""

    ok: bool
    reason: str = ""
    borrows: bool = False


QUOTA_OK = QuotaCheck(True)


def check_quota(
    queue: Queue,
    request: Resources,
    usage: Mapping[str, Usage],
    cohort_members: tuple[Queue, ...],
    cohort_totals: tuple[Mapping[str, int], Mapping[str, int]] | None = None,
) -> QuotaCheck:
    """Says whether ``queue`` may admit ``request`` on top of ``usage`` (per queue).

    ``cohort_members`` are the queues of ``queue``'s cohort, itself included (empty when
    it has none). ``cohort_totals``, when the caller has them, are the cohort's summed
    nominal quota and usage per resource (else they are summed here). Pure.
    """
    nominal = queue.nominal
    if nominal is None:
        return QUOTA_OK
    own = usage.get(queue.name, {})
    borrows = False
    amounts = (
        request.as_dict().items()
        if request.custom
        else ((CPU, request.cpu), (MEMORY, request.memory), (GPU, request.gpus))
    )
    for resource, amount in amounts:
        if not amount or resource not in nominal:
            continue
        wanted = own.get(resource, 0) + amount
        quota = nominal[resource]
        if wanted <= quota and not cohort_members:
            continue
        if wanted > quota:
            if not cohort_members:
                return QuotaCheck(False, f"over quota: {resource} {wanted} > nominal {quota}")
            limit = queue.borrowing_limit.get(resource)
            if limit is not None and wanted - quota > limit:
                return QuotaCheck(
                    False, f"over borrowing limit: {resource} {wanted} > {quota} + {limit}"
                )
            borrows = True
        if cohort_totals is not None:
            cohort_quota = cohort_totals[0].get(resource, 0)
            cohort_used = cohort_totals[1].get(resource, 0)
        else:
            cohort_quota = sum((q.nominal or {}).get(resource, 0) for q in cohort_members)
            cohort_used = sum(usage.get(q.name, {}).get(resource, 0) for q in cohort_members)
        if cohort_used + amount > cohort_quota:
            return QuotaCheck(
                False,
                f"cohort {queue.cohort} has no idle {resource} quota "
                f"({cohort_used} + {amount} > {cohort_quota})",
            )
    return QuotaCheck(True, borrows=borrows)


def cohort_totals(
    members: tuple[Queue, ...], usage: Mapping[str, Usage]
) -> tuple[dict[str, int], dict[str, int]]:
    """The summed nominal quota and usage of a cohort's ``members``, per resource."""
    quota: dict[str, int] = {}
    used: dict[str, int] = {}
    for member in members:
        for resource, amount in (member.nominal or {}).items():
            quota[resource] = quota.get(resource, 0) + amount
        for resource, amount in usage.get(member.name, {}).items():
            used[resource] = used.get(resource, 0) + amount
    return quota, used


def is_borrowing(queue: Queue, usage: Mapping[str, Usage]) -> bool:
    """True when ``queue`` uses more than its nominal quota of some resource."""
    if queue.nominal is None:
        return False
    own = usage.get(queue.name, {})
    return any(own.get(r, 0) > amount for r, amount in queue.nominal.items())
