from __future__ import annotations

import pytest

from aios.errors import InvalidInput
from aios.resources import Allocation, Resources
from aios.scheduler import Job, RunningJob
from tests.scheduler.harness import job


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": ""}, "id"),
        ({"replicas": 0}, "replicas"),
        ({"request": Resources(cpu=-1)}, "negative"),
        ({"request": Resources(custom=(("nic", -1),))}, "negative"),
        ({"time_limit": 0.0}, "time_limit"),
        ({"duration_estimate": -1.0}, "duration_estimate"),
        ({"dependencies": ("j",)}, "itself"),
    ],
)
def test_job_rejects_impossible_requests(kwargs: dict[str, object], message: str) -> None:
    """Empty ids, no replicas, negative requests, non-positive limits, negative estimates
    and self-dependencies are InvalidInput."""
    args: dict[str, object] = {"id": "j", "request": Resources(1000), **kwargs}
    with pytest.raises(InvalidInput, match=message):
        Job(**args)  # type: ignore[arg-type]


def test_total_multiplies_the_request_by_the_replicas() -> None:
    """A gang asks for its per-replica request times its replica count."""
    assert job("g", cpus=2, memory=10, gpus=1, replicas=3).total == Resources(6000, 30, 3)


@pytest.mark.parametrize(
    ("estimate", "limit", "expected"),
    [(100.0, None, 100.0), (None, 50.0, 50.0), (100.0, 50.0, 50.0), (None, None, None)],
)
def test_expected_runtime_is_the_tighter_of_estimate_and_limit(
    estimate: float | None, limit: float | None, expected: float | None
) -> None:
    """The runtime bound is the estimate, capped by the time limit."""
    j = Job("j", Resources(1000), duration_estimate=estimate, time_limit=limit)
    assert j.expected_runtime == expected


def test_enqueued_is_the_submit_time_until_requeued() -> None:
    """A job enters its queue at submit time, or at ``queued_at`` once requeued."""
    assert Job("j", Resources(), submit_time=5.0).enqueued == 5.0
    assert Job("j", Resources(), submit_time=5.0, queued_at=9.0).enqueued == 9.0


def test_attained_counts_gpu_seconds_or_core_seconds() -> None:
    """Service is GPUs × replicas × seconds, or whole cores for CPU-only jobs."""
    alloc = Allocation("n", (0,), (0,), 0)
    gpu = RunningJob(job("g", gpus=2, replicas=2, attained=10.0), (alloc,), started=100.0)
    assert gpu.attained(150.0) == 10.0 + 4 * 50
    assert gpu.attained(50.0) == 10.0
    cpu = RunningJob(job("c", cpus=3), (alloc,), started=0.0)
    assert cpu.attained(10.0) == 30.0
    tiny = RunningJob(job("t", cpus=0.5), (alloc,), started=0.0)
    assert tiny.attained(10.0) == 10.0


def test_expected_end_is_start_plus_runtime() -> None:
    """A running job with an estimate is expected to end that long after it started."""
    alloc = Allocation("n", (0,), (), 0)
    assert RunningJob(job("a", estimate=30.0), (alloc,), 100.0).expected_end == 130.0
    assert RunningJob(job("b"), (alloc,), 100.0).expected_end is None
