"""The named policies AIOS ships, and how a policy spec string becomes a Policy.

A spec is a policy name with options joined by ``+``: ``fifo``, ``fifo+backfill``,
``priority+backfill+spread``, ``las``. Options: ``backfill`` (EASY backfill, for the
strict policies ``fifo`` and ``priority``), ``binpack`` or ``spread`` (node order;
binpack is the default).
"""

from __future__ import annotations

from collections.abc import Callable

from aios.errors import UnknownPolicy
from aios.scheduler.framework import NodeOrder, Policy, Score
from aios.scheduler.plugins.ordering import DominantShare, FifoSort, LasSort, PrioritySort, SjfSort
from aios.scheduler.plugins.placement import Binpack, FitsCluster, NodeSelector, SameGpuKind, Spread
from aios.scheduler.plugins.preemption import LasPreemption, PriorityPreemption, ReclaimPreemption
from aios.scheduler.plugins.quota import Quota

__all__ = ["POLICIES", "available_policies", "make_policy"]

_OPTIONS = ("backfill", "binpack", "spread")


def _fifo(node_order: NodeOrder, scores: tuple[Score, ...], backfill: bool) -> Policy:
    return Policy(
        "fifo",
        FifoSort(),
        node_order,
        scores=scores,
        pre_filters=(FitsCluster(),),
        filters=(NodeSelector(),),
        permits=(SameGpuKind(),),
        strict=True,
        backfill=backfill,
    )


def _priority(node_order: NodeOrder, scores: tuple[Score, ...], backfill: bool) -> Policy:
    return Policy(
        "priority",
        PrioritySort(),
        node_order,
        scores=scores,
        pre_filters=(FitsCluster(),),
        filters=(NodeSelector(),),
        permits=(SameGpuKind(),),
        post_filters=(PriorityPreemption(),),
        strict=True,
        backfill=backfill,
    )


def _drf(node_order: NodeOrder, scores: tuple[Score, ...], backfill: bool) -> Policy:
    return Policy(
        "drf",
        PrioritySort(),
        node_order,
        fair_share=DominantShare(),
        scores=scores,
        pre_filters=(FitsCluster(), Quota()),
        filters=(NodeSelector(),),
        permits=(SameGpuKind(),),
        post_filters=(ReclaimPreemption(),),
    )


def _las(node_order: NodeOrder, scores: tuple[Score, ...], backfill: bool) -> Policy:
    sort = LasSort()
    return Policy(
        "las",
        sort,
        node_order,
        scores=scores,
        pre_filters=(FitsCluster(),),
        filters=(NodeSelector(),),
        permits=(SameGpuKind(),),
        post_filters=(LasPreemption(thresholds=sort.thresholds),),
    )


def _sjf(node_order: NodeOrder, scores: tuple[Score, ...], backfill: bool) -> Policy:
    return Policy(
        "sjf",
        SjfSort(),
        node_order,
        scores=scores,
        pre_filters=(FitsCluster(),),
        filters=(NodeSelector(),),
        permits=(SameGpuKind(),),
    )


POLICIES: dict[str, Callable[[NodeOrder, tuple[Score, ...], bool], Policy]] = {
    "fifo": _fifo,
    "priority": _priority,
    "drf": _drf,
    "las": _las,
    "sjf": _sjf,
}
_STRICT = ("fifo", "priority")


def available_policies() -> list[str]:
    return sorted(POLICIES)


def make_policy(spec: str) -> Policy:
    """Builds the policy a spec names; raises UnknownPolicy naming what is wrong."""
    name, *options = [part.strip() for part in spec.strip().split("+")]
    factory = POLICIES.get(name)
    if factory is None:
        raise UnknownPolicy(f"unknown policy {name!r} (known: {', '.join(available_policies())})")
    for option in options:
        if option not in _OPTIONS:
            raise UnknownPolicy(
                f"policy {spec!r}: unknown option {option!r} (known: {', '.join(_OPTIONS)})"
            )
    if "backfill" in options and name not in _STRICT:
        raise UnknownPolicy(f"policy {spec!r}: backfill applies to {' and '.join(_STRICT)} only")
    if "binpack" in options and "spread" in options:
        raise UnknownPolicy(f"policy {spec!r}: choose binpack or spread, not both")
    spread = Spread()
    node_order: NodeOrder = spread if "spread" in options else Binpack()
    scores: tuple[Score, ...] = (spread,) if "spread" in options else ()
    policy = factory(node_order, scores, "backfill" in options)
    return Policy(**{**policy.__dict__, "name": "+".join([name, *options])})
