"""Share fairness: water-filling entitlements and the received/entitled ratio per tenant."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aios.simulator.fairness import fair_shares, share_fairness, share_ratios
from aios.simulator.metrics import JobOutcome


@pytest.mark.parametrize(
    ("demands", "capacity", "weights", "expected"),
    [
        ([1, 10, 10], 9, None, [1, 4, 4]),  # the small demand is met, the rest split
        ([2, 3], 10, None, [2, 3]),  # enough for everyone: each gets what it asked
        ([10, 10], 9, [1, 2], [3, 6]),  # split by weight
        ([0, 5], 4, None, [0, 4]),  # no demand, no share
        ([5, 5], 0, None, [0, 0]),
    ],
)
def test_fair_shares_water_fill(
    demands: list[float], capacity: float, weights: list[float] | None, expected: list[float]
) -> None:
    assert fair_shares(demands, capacity, weights) == pytest.approx(expected)


@given(
    st.lists(st.floats(0, 100), min_size=1, max_size=12),
    st.floats(0, 200),
)
def test_fair_shares_are_max_min_fair(demands: list[float], capacity: float) -> None:
    """Shares sum to what can be given, never exceed a demand, and a tenant left short
    holds at least as much as anyone else."""
    shares = fair_shares(demands, capacity)
    assert math.fsum(shares) == pytest.approx(min(capacity, math.fsum(demands)), abs=1e-6)
    for share, demand in zip(shares, demands, strict=True):
        assert -1e-9 <= share <= demand + 1e-9
    short = [s for s, d in zip(shares, demands, strict=True) if s < d - 1e-6]
    if short:
        assert min(short) >= max(shares) - 1e-6


def job(
    job_id: str, tenant: str, submit: float, start: float | None, finish: float | None
) -> JobOutcome:
    duration = (finish - start) if start is not None and finish is not None else 10.0
    return JobOutcome(job_id, tenant, submit, duration, 1, start, finish)


def test_a_tenant_that_hogs_the_cluster_reads_unfair() -> None:
    """Two GPUs; tenant a runs two jobs on [0, 10) while b's one job waits until 10.
    Entitled: a 1 GPU and b 1 GPU on [0, 10), b 1 GPU on [10, 20), so a 10 and b 20 GPU·s;
    received a 20, b 10: ratios 2 and 0.5."""
    outcomes = [job("a1", "a", 0, 0, 10), job("a2", "a", 0, 0, 10), job("b1", "b", 0, 10, 20)]
    ratios = share_ratios(outcomes, gpu_capacity=2)
    assert ratios == pytest.approx({"a": 2.0, "b": 0.5})
    assert share_fairness(outcomes, 2) == pytest.approx(2.5**2 / (2 * (4 + 0.25)))


def test_a_schedule_that_honours_shares_reads_fair() -> None:
    """The same jobs, but a's second job waits for b's: every tenant gets its share."""
    outcomes = [job("a1", "a", 0, 0, 10), job("a2", "a", 0, 10, 20), job("b1", "b", 0, 0, 10)]
    assert share_ratios(outcomes, gpu_capacity=2) == pytest.approx({"a": 1.0, "b": 1.0})
    assert share_fairness(outcomes, 2) == pytest.approx(1.0)


def test_given_allocations_override_start_to_finish() -> None:
    """A preempted job held its GPU for less than start to finish: the simulator's exact
    per-tenant series is what counts."""
    outcomes = [job("a1", "a", 0, 0, 20)]
    held = {"a": [(0.0, 1), (5.0, 0), (10.0, 1), (20.0, 0)]}
    assert share_ratios(outcomes, 1, allocations=held) == pytest.approx({"a": 0.75})


def test_nothing_to_share() -> None:
    assert share_ratios([], 8) == {}
    assert share_fairness([job("a", "a", 0, None, None)], 8) == 1.0
    assert share_fairness([job("a", "a", 0, 0, 10)], 0) == 1.0
