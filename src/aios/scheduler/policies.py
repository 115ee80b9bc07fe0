"""The named policies AIOS ships, and how a policy spec string becomes a Policy.

A spec is a policy name with options joined by ``+``: ``fifo``, ``fifo+backfill``,
``priority+backfill+spread``, ``las``. Options: ``backfill`` (EASY backfill, for the
strict policies ``fifo`` and ``priority``), ``binpack`` or ``spread`` (node order;
binpack is the default).

``learned`` orders by the Gittins index of each job's class (queue, GPUs, name; the same name
at other sizes; wider classes while those know too little), learned
from the jobs that finished (:mod:`aios.scheduler.learning`), least attained service
first while nothing has finished; its owner feeds ``Policy.learner``.

``oracle-srtf`` is the yardstick, not a policy to run: preemptive shortest remaining
GPU-time first with every job's true duration, which only the simulator has. It is
marked clairvoyant, and :func:`make_live_policy` (what the control plane calls) refuses
it.
"""

from __future__ import annotations

from collections.abc import Callable

from aios.errors import InvalidInput, UnknownPolicy
from aios.scheduler.framework import NodeOrder, Policy, Score
from aios.scheduler.learning import ServiceHistory
from aios.scheduler.plugins.gittins import GittinsPreemption, GittinsSort
from aios.scheduler.plugins.ordering import (
    DominantShare,
    FifoSort,
    LasSort,
    PrioritySort,
    SjfSort,
    SrtfSort,
)
from aios.scheduler.plugins.placement import Binpack, FitsCluster, NodeSelector, SameGpuKind, Spread
from aios.scheduler.plugins.preemption import (
    LasPreemption,
    PriorityPreemption,
    ReclaimPreemption,
    SrtfPreemption,
)
from aios.scheduler.plugins.quota import Quota

__all__ = [
    "BOUND",
    "POLICIES",
    "available_policies",
    "check_live",
    "make_live_policy",
    "make_policy",
]

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


def _oracle_srtf(node_order: NodeOrder, scores: tuple[Score, ...], backfill: bool) -> Policy:
    # No starvation guard: the bound serves the least remaining work first, always.
    return Policy(
        BOUND,
        SrtfSort(),
        node_order,
        scores=scores,
        pre_filters=(FitsCluster(),),
        filters=(NodeSelector(),),
        permits=(SameGpuKind(),),
        post_filters=(SrtfPreemption(),),
        starvation_limit=None,
        clairvoyant=True,
    )


def _learned(node_order: NodeOrder, scores: tuple[Score, ...], backfill: bool) -> Policy:
    history = ServiceHistory()
    return Policy(
        "learned",
        GittinsSort(history),
        node_order,
        scores=scores,
        pre_filters=(FitsCluster(),),
        filters=(NodeSelector(),),
        permits=(SameGpuKind(),),
        post_filters=(GittinsPreemption(history),),
        starvation_limit=None,  # the index already ages a job: its class's tail decides
        learner=history,
    )


BOUND = "oracle-srtf"
"""The clairvoyant policy every other is measured against in a simulation."""

POLICIES: dict[str, Callable[[NodeOrder, tuple[Score, ...], bool], Policy]] = {
    "fifo": _fifo,
    "priority": _priority,
    "drf": _drf,
    "las": _las,
    "sjf": _sjf,
    "learned": _learned,
    BOUND: _oracle_srtf,
}
_STRICT = ("fifo", "priority")
_CLAIRVOYANT = (BOUND,)


def available_policies(live: bool = False) -> list[str]:
    """The policy names, sorted; ``live``: only those a control plane may run."""
    return sorted(name for name in POLICIES if not (live and name in _CLAIRVOYANT))


def make_live_policy(spec: str) -> Policy:
    """Builds the policy a spec names for a live cluster: as :func:`make_policy` (an
    unknown name's message lists the live policies), and raises InvalidInput for a
    clairvoyant policy, which needs true job durations."""
    name = spec.strip().split("+")[0].strip()
    if name not in POLICIES:
        known = ", ".join(available_policies(live=True))
        raise UnknownPolicy(f"unknown policy {name!r} (known: {known})")
    policy = make_policy(spec)
    check_live(policy)
    return policy


def check_live(policy: Policy) -> None:
    """Raises InvalidInput when ``policy`` cannot schedule a live cluster: a clairvoyant
    one needs every job's true duration, which only a simulation knows."""
    if policy.clairvoyant:
        raise InvalidInput(
            f"policy {policy.name!r} needs every job's true duration, which only a "
            "simulation knows: use it with 'aios simulate', not on a live cluster"
        )


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
