from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aios.errors import InvalidInput
from aios.simulator.metrics import (
    JobOutcome,
    jain_index,
    percentile,
    summarize,
    utilization,
    utilization_series,
)

STEPS = [(0.0, 2), (10.0, 4), (20.0, 0)]
"""Two GPUs busy on [0, 10), four on [10, 20), none from 20 on."""


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([2.0, 2.0, 2.0], 1.0),
        ([1.0, 0.0, 0.0, 0.0], 0.25),
        ([1.0, 2.0, 3.0], 36 / 42),
        ([5.0], 1.0),
        ([], 1.0),
        ([0.0, 0.0], 1.0),
    ],
)
def test_jain_index(values: list[float], expected: float) -> None:
    """Equal values score 1, one value holding all scores 1/n, empty or all-zero scores 1."""
    assert jain_index(values) == pytest.approx(expected)


@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=50))
def test_jain_index_lies_between_one_over_n_and_one(values: list[float]) -> None:
    """Jain's index of non-negative values is always in [1/n, 1]."""
    index = jain_index(values)
    assert 1 / len(values) - 1e-9 <= index <= 1.0 + 1e-9


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 25, 1.75),
        ([1.0, 3.0], 95, 2.9),
        ([10.0, 10.5, 20.0], 99, 19.81),
        ([7.0], 37, 7.0),
        ([], 50, 0.0),
    ],
)
def test_percentile_interpolates_linearly(values: list[float], q: float, expected: float) -> None:
    """Percentiles interpolate between ranks at (n - 1)·q/100, as numpy's default does."""
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize("q", [-1.0, 100.5])
def test_percentile_rejects_q_outside_0_to_100(q: float) -> None:
    """A percentile outside [0, 100] is a caller mistake."""
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        percentile([1.0], q)


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100),
)
def test_percentile_is_monotone_and_bounded(values: list[float], q1: float, q2: float) -> None:
    """Percentiles stay within [min, max] and never decrease as q grows."""
    ordered = sorted(values)
    low, high = sorted((q1, q2))
    assert ordered[0] - 1e-6 <= percentile(ordered, low) <= percentile(ordered, high) + 1e-6
    assert percentile(ordered, high) <= ordered[-1] + 1e-6


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 20.0, (2 * 10 + 4 * 10) / 20 / 4),
        (5.0, 15.0, (2 * 5 + 4 * 5) / 10 / 4),
        (15.0, 30.0, (4 * 5) / 15 / 4),
        (-10.0, 10.0, (2 * 10) / 20 / 4),
        (25.0, 30.0, 0.0),
    ],
)
def test_utilization_of_a_step_function(start: float, end: float, expected: float) -> None:
    """Each sample holds until the next one, and nothing is busy before the first."""
    assert utilization(STEPS, 4, start, end) == pytest.approx(expected)


def test_last_sample_holds_to_the_end() -> None:
    """The last sample's value extends to the end of the window."""
    assert utilization([(0.0, 3)], 4, 0.0, 100.0) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("capacity", "start", "end"), [(0, 0.0, 20.0), (4, 5.0, 5.0), (4, 6.0, 5.0)]
)
def test_utilization_of_nothing_is_zero(capacity: int, start: float, end: float) -> None:
    """No capacity or an empty window gives 0.0."""
    assert utilization(STEPS, capacity, start, end) == 0.0


def test_utilization_series_buckets() -> None:
    """Buckets tile [first, last] sample time; the last one is averaged over its own length."""
    assert utilization_series(STEPS, 4, 10.0) == [(0.0, 0.5), (10.0, 1.0)]
    series = utilization_series(STEPS, 4, 15.0)
    assert [start for start, _ in series] == [0.0, 15.0]
    assert [mean for _, mean in series] == pytest.approx([(2 * 10 + 4 * 5) / 15 / 4, 1.0])
    assert utilization_series(STEPS, 0, 10.0) == [(0.0, 0.0), (10.0, 0.0)]
    assert utilization_series([(5.0, 1)], 4, 10.0) == []
    with pytest.raises(InvalidInput, match="bucket"):
        utilization_series(STEPS, 4, 0.0)


def outcome(
    job_id: str,
    tenant: str,
    *,
    submit: float,
    duration: float,
    start: float | None,
    finish: float | None,
    preemptions: int = 0,
    unschedulable: bool = False,
) -> JobOutcome:
    return JobOutcome(
        job_id, tenant, submit, duration, 1, start, finish, preemptions, unschedulable
    )


def test_summarize_hand_checked_example() -> None:
    """Every metric of a five-job run matches the value worked out by hand."""
    outcomes = [
        outcome("a", "x", submit=0, duration=10, start=0, finish=10),  # JCT 10, slowdown 1
        outcome("b", "x", submit=0, duration=10, start=10, finish=20),  # JCT 20, slowdown 2
        # JCT 10.5; a duration under 1 s counts as 1 s, so slowdown 10.5
        outcome("c", "y", submit=5, duration=0.5, start=15, finish=15.5, preemptions=1),
        outcome("d", "z", submit=8, duration=100, start=None, finish=None, unschedulable=True),
        outcome("e", "y", submit=12, duration=10, start=20, finish=None, preemptions=2),
    ]
    samples = [(0.0, 4), (10.0, 3), (20.0, 0)]
    metrics = summarize("fifo", outcomes, samples, gpu_capacity=4)
    # JCTs sorted: 10, 10.5, 20. p95 rank 1.9: 10.5 + 0.9·9.5; p99 rank 1.98: 10.5 + 0.98·9.5.
    # Delays of started jobs: 0, 10, 10, 8. Window [0, 20]: (4·10 + 3·10) / (20·4).
    # Tenant mean slowdowns: x (1 + 2)/2 = 1.5, y 10.5, z none → 12² / (2·(1.5² + 10.5²)).
    # Shares on 4 GPUs never bind, so each tenant is entitled to what it wanted: x 2 GPUs
    # on [0, 10) and 1 on [10, 20) = 30; y 1 on [5, 12), 2 on [12, 15.5), 1 to 20 = 18.5.
    # Received (first start to finish): x 20, y 0.5.
    x, y = 20 / 30, 0.5 / 18.5
    assert metrics.as_dict() == pytest.approx(
        {
            "policy": "fifo",
            "jobs": 5,
            "completed": 3,
            "unschedulable": 1,
            "mean_jct": 13.5,
            "median_jct": 10.5,
            "p95_jct": 19.05,
            "p99_jct": 19.81,
            "mean_queueing_delay": 7.0,
            "makespan": 20.0,
            "gpu_utilization": 0.875,
            "jain_index": (x + y) ** 2 / (2 * (x * x + y * y)),
            "slowdown_jain": 0.64,
            "preemptions": 3,
            "lost_gpu_seconds": 0.0,
            "restore_seconds": 0.0,
        }
    )


def test_summarize_of_nothing_completed() -> None:
    """With no completed job every time metric is 0.0 and fairness is 1.0."""
    outcomes = [outcome("a", "x", submit=0, duration=5, start=None, finish=None)]
    metrics = summarize("fifo", outcomes, [], gpu_capacity=8)
    assert (metrics.jobs, metrics.completed, metrics.unschedulable) == (1, 0, 0)
    assert metrics.mean_jct == metrics.p99_jct == metrics.makespan == 0.0
    assert metrics.mean_queueing_delay == metrics.gpu_utilization == 0.0
    assert metrics.jain_index == metrics.slowdown_jain == 1.0


def test_summarize_window_starts_at_first_completed_submit() -> None:
    """Makespan and utilization span first submit to last finish of completed jobs."""
    outcomes = [
        outcome("a", "x", submit=10, duration=10, start=10, finish=20),
        outcome("b", "x", submit=0, duration=10, start=None, finish=None),
    ]
    metrics = summarize("fifo", outcomes, [(0.0, 0), (10.0, 2), (20.0, 0)], gpu_capacity=2)
    assert metrics.makespan == 10.0
    assert metrics.gpu_utilization == pytest.approx(1.0)


def test_metrics_as_dict_keeps_field_order() -> None:
    """as_dict gives every field by name, in declaration order."""
    row = summarize("drf", [], [], gpu_capacity=0).as_dict()
    assert list(row) == [
        "policy",
        "jobs",
        "completed",
        "unschedulable",
        "mean_jct",
        "median_jct",
        "p95_jct",
        "p99_jct",
        "mean_queueing_delay",
        "makespan",
        "gpu_utilization",
        "jain_index",
        "slowdown_jain",
        "preemptions",
        "lost_gpu_seconds",
        "restore_seconds",
    ]
    assert row["policy"] == "drf"
    assert row["jobs"] == 0


def test_summarize_sums_preemption_losses_per_gpu() -> None:
    """Lost GPU-seconds are each job's redone work and restores times its GPUs."""
    outcomes = [
        JobOutcome("a", "x", 0, 10, 4, 0, 30, 2, False, lost_work=5.0, restore_time=3.0),
        JobOutcome("b", "x", 0, 10, 1, 0, 20, 1, False, lost_work=0.0, restore_time=6.0),
    ]
    metrics = summarize("las", outcomes, [(0.0, 5), (30.0, 0)], gpu_capacity=8)
    assert metrics.lost_gpu_seconds == 4 * 8.0 + 1 * 6.0
    assert metrics.restore_seconds == 9.0
