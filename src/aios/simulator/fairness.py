"""Share fairness: how close each tenant came to the GPU time it was entitled to.

A tenant's entitlement at any moment is its weighted max-min fair share of the GPUs
given what every tenant wanted then (water-filling: no tenant is entitled to more than
it asked for, and what one leaves unused is split among the others by weight). Over a
replay, each tenant's *share ratio* is the GPU time it received divided by the GPU time
it was entitled to, and Jain's index over those ratios says how evenly the policy
honoured the entitlements: 1.0 when every tenant got exactly its share, lower when
some got more at others' expense. This is the index fair-share schedulers are judged
by (the DRF and Themis papers measure shares, not slowdowns).

Everything is pure. Demand and allocation are step functions of time; the window is cut
into equal buckets and the water-filling runs once per bucket on the mean demand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from aios.simulator.metrics import BusyIntegral, JobOutcome, jain_index

__all__ = ["fair_shares", "share_fairness", "share_ratios"]

BUCKETS = 4096
"""Buckets the replay window is cut into for the water-filling."""

Samples = Sequence[tuple[float, int]]


def fair_shares(
    demands: Sequence[float], capacity: float, weights: Sequence[float] | None = None
) -> list[float]:
    """Returns each tenant's weighted max-min fair share of ``capacity`` given its demand.

    Water-filling: every tenant whose demand is below its weighted share of what is left
    gets its demand, and the rest is split again among the others, until no demand is
    under its share. The shares sum to ``min(capacity, sum(demands))``.
    """
    weights = list(weights) if weights is not None else [1.0] * len(demands)
    shares = [0.0] * len(demands)
    open_tenants = {i for i, demand in enumerate(demands) if demand > 0 and weights[i] > 0}
    left = float(capacity)
    while open_tenants and left > 1e-12:
        total_weight = math.fsum(weights[i] for i in open_tenants)
        satisfied = {
            i for i in open_tenants if demands[i] - shares[i] <= left * weights[i] / total_weight
        }
        if not satisfied:
            for i in open_tenants:
                shares[i] += left * weights[i] / total_weight
            break
        for i in satisfied:
            left -= demands[i] - shares[i]
            shares[i] = demands[i]
        open_tenants -= satisfied
    return shares


Series = dict[str, list[tuple[float, int]]]


def _series(intervals: Iterable[tuple[str, float, float, int]]) -> Series:
    """Per tenant, the step function of the sum of ``(tenant, start, stop, gpus)``."""
    changes: dict[str, dict[float, int]] = {}
    for tenant, start, stop, gpus in intervals:
        steps = changes.setdefault(tenant, {})
        steps[start] = steps.get(start, 0) + gpus
        steps[stop] = steps.get(stop, 0) - gpus
    series: Series = {}
    for tenant, steps in changes.items():
        level, points = 0, []
        for time in sorted(steps):
            level += steps[time]
            points.append((time, level))
        series[tenant] = points
    return series


def _demand(outcomes: Sequence[JobOutcome], end: float) -> Series:
    """GPUs wanted over time: a job wants its GPUs from submit until it finishes (or
    until ``end``). Jobs that could never fit want nothing."""
    return _series(
        (o.tenant, o.submit, o.finish if o.finish is not None else end, o.gpus)
        for o in outcomes
        if not o.unschedulable and o.gpus > 0
    )


def _held(outcomes: Sequence[JobOutcome]) -> Series:
    """GPUs held over time from each job's first start to its finish: exact without
    preemption, an upper bound with it (the simulator passes the exact series)."""
    return _series(
        (o.tenant, o.start, o.finish, o.gpus)
        for o in outcomes
        if o.start is not None and o.finish is not None
    )


def share_ratios(
    outcomes: Sequence[JobOutcome],
    gpu_capacity: int,
    allocations: Mapping[str, Samples] | None = None,
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Returns, per tenant that was ever entitled to something, the GPU time it received
    divided by the GPU time its fair share entitled it to, over the replay's window (first
    submit to last finish). ``allocations`` are per-tenant step functions of GPUs held
    (from the simulator); without them they are derived from first start to finish."""
    if gpu_capacity <= 0 or not outcomes:
        return {}
    start = min(o.submit for o in outcomes)
    end = max([o.finish for o in outcomes if o.finish is not None], default=start)
    if end <= start:
        return {}
    demand = {t: BusyIntegral(s) for t, s in _demand(outcomes, end).items()}
    held_samples = allocations if allocations is not None else _held(outcomes)
    held = {t: BusyIntegral(s) for t, s in held_samples.items()}
    tenants = sorted(demand)
    tenant_weights = [(weights or {}).get(t, 1.0) for t in tenants]
    width = (end - start) / BUCKETS
    entitled = dict.fromkeys(tenants, 0.0)
    for k in range(BUCKETS):
        low = start + k * width
        high = end if k == BUCKETS - 1 else low + width
        wanted = [demand[t].mean(low, high) for t in tenants]
        for tenant, share in zip(
            tenants, fair_shares(wanted, gpu_capacity, tenant_weights), strict=True
        ):
            entitled[tenant] += share * (high - low)
    ratios: dict[str, float] = {}
    for tenant in tenants:
        if entitled[tenant] <= 0:
            continue
        got = held[tenant].at(end) - held[tenant].at(start) if tenant in held else 0.0
        ratios[tenant] = got / entitled[tenant]
    return ratios


def share_fairness(
    outcomes: Sequence[JobOutcome],
    gpu_capacity: int,
    allocations: Mapping[str, Samples] | None = None,
    weights: Mapping[str, float] | None = None,
) -> float:
    """Returns Jain's index over the tenants' share ratios (see :func:`share_ratios`):
    1.0 when every tenant received the GPU time its fair share entitled it to."""
    return jain_index(list(share_ratios(outcomes, gpu_capacity, allocations, weights).values()))
