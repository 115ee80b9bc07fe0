from __future__ import annotations

import pytest

from aios.scheduler import JobState, UpstreamFailed, cycle, make_policy
from tests.scheduler.harness import ALL_POLICIES, bound, gpu_node, job, new_state, occupy, step


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_a_job_waits_until_its_parent_succeeds(spec: str) -> None:
    """A job whose parent is still running is not bound (and says why), however much room
    there is; it is bound once the parent has succeeded."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1")])
    occupy(state, job("parent", gpus=1), "n1")
    state.submit(job("child", gpus=1, dependencies=("parent",), submit=1))
    waiting = step(state, policy, 10)
    assert waiting.decisions == []
    assert "child" in waiting.reasons
    state.finish("parent", JobState.SUCCEEDED)
    assert bound(step(state, policy, 20)) == ["child"]


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_a_job_waits_for_every_parent(spec: str) -> None:
    """A job with two parents waits until both have succeeded."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1")])
    state.submit(job("child", gpus=1, dependencies=("p1", "p2")))
    state.finish("p1", JobState.SUCCEEDED)
    assert cycle(state, 10, policy).decisions == []
    state.finish("p2", JobState.SUCCEEDED)
    assert bound(cycle(state, 10, policy)) == ["child"]


@pytest.mark.parametrize("spec", ALL_POLICIES)
@pytest.mark.parametrize(
    "ended",
    [JobState.FAILED, JobState.CANCELLED, JobState.UPSTREAM_FAILED, JobState.UNSCHEDULABLE],
)
def test_a_job_whose_parent_did_not_succeed_is_upstream_failed(spec: str, ended: JobState) -> None:
    """A failed, cancelled, upstream-failed or unschedulable parent makes the child
    UpstreamFailed, naming the parent, and it is never bound."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1")])
    state.submit(job("ok", gpus=1, submit=0))
    state.submit(job("child", gpus=1, dependencies=("ok", "bad"), submit=1))
    state.finish("ok", JobState.SUCCEEDED)
    state.finish("bad", ended)
    result = cycle(state, 10, policy)
    assert result.decisions == [UpstreamFailed("child", "bad")]


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_upstream_failure_spreads_down_a_chain_cycle_by_cycle(spec: str) -> None:
    """Once the caller records the child as upstream-failed, its own child follows."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1")])
    state.submit(job("child", gpus=1, dependencies=("root",)))
    state.submit(job("grandchild", gpus=1, dependencies=("child",), submit=1))
    state.finish("root", JobState.FAILED)
    assert step(state, policy, 10).decisions == [UpstreamFailed("child", "root")]
    assert step(state, policy, 20).decisions == [UpstreamFailed("grandchild", "child")]
    assert len(state.pending) == 0


@pytest.mark.parametrize("spec", ["fifo", "priority", "fifo+backfill"])
def test_a_waiting_child_does_not_block_a_strict_queue(spec: str) -> None:
    """A job waiting for its parent is not a blocked head: jobs behind it still start."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1")])
    occupy(state, job("parent", gpus=1), "n1")
    state.submit(job("child", gpus=1, dependencies=("parent",), submit=1))
    state.submit(job("other", gpus=1, submit=2))
    assert bound(cycle(state, 10, policy)) == ["other"]
