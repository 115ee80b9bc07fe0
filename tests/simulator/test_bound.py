"""The clairvoyant bound, oracle-srtf: preemptive shortest remaining GPU-time first on
the simulator's true durations, charged the same preemption costs as every policy."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aios.scheduler import FREE, PreemptionCost, make_policy
from aios.simulator import ClusterSpec, simulate
from aios.simulator.traces import TraceJob

ONE_GPU = ClusterSpec(nodes=1, gpus_per_node=1)


def jobs(*rows: tuple[float, float]) -> list[TraceJob]:
    return [
        TraceJob(f"j{i}", submit, run, 1, None, None, "a") for i, (submit, run) in enumerate(rows)
    ]


def test_the_bound_needs_true_durations() -> None:
    assert make_policy("oracle-srtf").clairvoyant
    assert not make_policy("las").clairvoyant


def test_shortest_remaining_preempts_at_each_arrival() -> None:
    """A 100 s job is preempted by a 20 s one, which a 5 s one preempts in turn: they
    end at 25, 35 and 125 s, the least mean completion time one GPU allows."""
    result = simulate(jobs((0, 100), (10, 20), (20, 5)), ONE_GPU, "oracle-srtf", cost=FREE)
    ends = {o.job_id: o.finish for o in result.outcomes}
    assert ends == {"j0": 125.0, "j1": 35.0, "j2": 25.0}
    assert result.metrics.preemptions == 2


def best_mean_jct(rows: list[tuple[int, int]]) -> float:
    """The least mean JCT over every preemptive schedule of ``rows`` (submit, run) on
    one machine, by exhaustive search over which ready job gets each unit of time
    (exact for integer times; memoised on the time and the work left)."""

    @functools.cache
    def least(t: int, left: tuple[int, ...]) -> float:
        if not any(left):
            return 0.0
        ready = [i for i, x in enumerate(left) if x and rows[i][0] <= t]
        if not ready:
            return least(t + 1, left)
        best = math.inf
        for i in ready:
            after = (*left[:i], left[i] - 1, *left[i + 1 :])
            ended = t + 1 - rows[i][0] if after[i] == 0 else 0
            best = min(best, ended + least(t + 1, after))
        return best

    return least(0, tuple(run for _, run in rows)) / len(rows)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(1, 5)), min_size=1, max_size=4))
def test_the_bound_is_optimal_on_one_gpu_without_costs(rows: list[tuple[int, int]]) -> None:
    """On one GPU with free preemption no schedule has a lower mean JCT."""
    trace = jobs(*[(float(s), float(r)) for s, r in rows])
    result = simulate(trace, ONE_GPU, "oracle-srtf", cost=FREE)
    assert result.metrics.completed == len(rows)
    assert result.metrics.mean_jct == pytest.approx(best_mean_jct(rows))


@pytest.mark.parametrize("policy", ["fifo", "sjf", "las", "drf"])
def test_no_policy_beats_the_bound_on_a_small_mix(policy: str) -> None:
    """On a small mix of 1- to 8-GPU jobs on two nodes the bound's mean JCT is the
    lowest, preemption costs included."""
    sizes = itertools.cycle([1, 2, 8, 1, 4, 16, 1])
    runs = itertools.cycle([600.0, 7200.0, 60.0, 36000.0, 1800.0, 3600.0, 300.0])
    trace = [
        TraceJob(f"j{i}", 120.0 * i, next(runs), next(sizes), None, None, f"t{i % 3}")
        for i in range(40)
    ]
    spec = ClusterSpec(nodes=2, gpus_per_node=8)
    cost = PreemptionCost(60.0, 1800.0)
    bound = simulate(trace, spec, "oracle-srtf", cost=cost).metrics
    other = simulate(trace, spec, policy, cost=cost).metrics
    assert bound.completed == other.completed == 40
    assert bound.mean_jct <= other.mean_jct
