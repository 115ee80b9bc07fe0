from __future__ import annotations

import pytest

from aios.scheduler import JobState, Queue, Unschedulable, cycle, make_policy
from tests.scheduler.harness import bound, gpu_node, job, new_state, occupy, step

DRF = ["drf", "drf+spread", "drf+binpack"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_enforces_nominal_quota_without_a_cohort(spec: str) -> None:
    """A queue without a cohort never uses more than its nominal quota, however idle the
    cluster; another queue is not held up by it."""
    policy = make_policy(spec)
    queues = [Queue("a", nominal={"gpu": 2}), Queue("b")]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    for i in range(4):
        state.submit(job(f"a{i}", gpus=1, queue="a", submit=i))
    state.submit(job("b0", gpus=1, queue="b", submit=10))
    result = step(state, policy, 20)
    assert sorted(bound(result)) == ["a0", "a1", "b0"]
    assert "a2" in result.reasons and "a3" in state.pending
    assert state.usage["a"]["gpu"] == 2


@pytest.mark.parametrize("spec", DRF)
def test_drf_admits_the_next_job_once_the_queue_is_back_under_quota(spec: str) -> None:
    """When a queue's job ends, the next one waiting on its quota starts."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 8)], [Queue("a", nominal={"gpu": 1})])
    state.submit(job("a0", gpus=1, queue="a", submit=0))
    state.submit(job("a1", gpus=1, queue="a", submit=1))
    assert bound(step(state, policy, 10)) == ["a0"]
    state.finish("a0", JobState.SUCCEEDED)
    assert bound(step(state, policy, 20)) == ["a1"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_job_larger_than_its_quota_is_unschedulable(spec: str) -> None:
    """A job asking for more than its queue could ever be given is Unschedulable."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 8)], [Queue("a", nominal={"gpu": 2})])
    state.submit(job("big", gpus=3, queue="a"))
    (decision,) = cycle(state, 0, policy).decisions
    assert isinstance(decision, Unschedulable)
    assert decision.job_id == "big"
    assert decision.reason


@pytest.mark.parametrize("spec", DRF)
def test_drf_quota_ignores_resources_it_does_not_name(spec: str) -> None:
    """A quota on GPUs does not limit CPU-only jobs of the queue."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 8, cpus=8)], [Queue("a", nominal={"gpu": 0})])
    state.submit(job("cpu", cpus=8, queue="a"))
    assert bound(cycle(state, 0, policy)) == ["cpu"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_borrows_idle_cohort_quota_up_to_the_borrowing_limit(spec: str) -> None:
    """A queue may borrow its cohort's idle quota, but no more than its borrowing limit."""
    policy = make_policy(spec)
    queues = [
        Queue("a", nominal={"gpu": 2}, cohort="c", borrowing_limit={"gpu": 2}),
        Queue("b", nominal={"gpu": 6}, cohort="c"),
    ]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    for i in range(8):
        state.submit(job(f"a{i}", gpus=1, queue="a", submit=i))
    assert len(step(state, policy, 10).binds) == 4
    assert state.usage["a"]["gpu"] == 4


@pytest.mark.parametrize("spec", DRF)
def test_drf_borrowing_is_capped_by_the_cohort_quota(spec: str) -> None:
    """Without a borrowing limit a queue takes at most what its cohort's quotas add up to,
    even when the cluster has more."""
    policy = make_policy(spec)
    queues = [
        Queue("a", nominal={"gpu": 2}, cohort="c"),
        Queue("b", nominal={"gpu": 4}, cohort="c"),
    ]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    for i in range(8):
        state.submit(job(f"a{i}", gpus=1, queue="a", submit=i))
    assert len(step(state, policy, 10).binds) == 6


@pytest.mark.parametrize("spec", DRF)
def test_drf_reclaims_borrowed_quota_when_the_cluster_is_full(spec: str) -> None:
    """A lender within its nominal quota preempts a borrower's newest job when no node has
    room, and starts in the next cycle once the caller has requeued the victim."""
    policy = make_policy(spec)
    queues = [
        Queue("a", nominal={"gpu": 2}, cohort="c"),
        Queue("b", nominal={"gpu": 10}, cohort="c"),
    ]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    for i in range(8):
        occupy(state, job(f"a{i}", gpus=1, queue="a"), "n1", now=float(i))
    state.submit(job("b0", gpus=1, queue="b", submit=20))
    first = step(state, policy, 30)
    assert [(p.victim.job.id, p.preemptor) for p in first.preemptions] == [("a7", "b0")]
    assert first.binds == []
    assert bound(step(state, policy, 30)) == ["b0"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_reclaims_borrowed_quota_when_the_cohort_quota_is_used_up(spec: str) -> None:
    """A lender within its nominal quota gets back what a borrower took of it by
    preemption, also when the borrower holds all of the cohort's quota."""
    policy = make_policy(spec)
    queues = [
        Queue("a", nominal={"gpu": 2}, cohort="c"),
        Queue("b", nominal={"gpu": 6}, cohort="c"),
    ]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    for i in range(8):
        occupy(state, job(f"a{i}", gpus=1, queue="a"), "n1", now=float(i))
    state.submit(job("b0", gpus=1, queue="b", submit=20))
    first = step(state, policy, 30)
    assert [p.victim.job.id for p in first.preemptions] == ["a7"]
    assert bound(step(state, policy, 30)) == ["b0"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_does_not_reclaim_for_a_queue_above_its_nominal_quota(spec: str) -> None:
    """A queue that would itself borrow does not preempt other borrowers."""
    policy = make_policy(spec)
    queues = [
        Queue("a", nominal={"gpu": 2}, cohort="c"),
        Queue("b", nominal={"gpu": 2}, cohort="c"),
        Queue("idle", nominal={"gpu": 8}, cohort="c"),
    ]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    for i in range(6):
        occupy(state, job(f"a{i}", gpus=1, queue="a"), "n1")
    for i in range(2):
        occupy(state, job(f"b{i}", gpus=1, queue="b"), "n1")
    state.submit(job("b2", gpus=1, queue="b", submit=20))
    assert cycle(state, 30, policy).decisions == []


@pytest.mark.parametrize("spec", DRF)
def test_drf_does_not_reclaim_from_a_queue_within_its_quota(spec: str) -> None:
    """Jobs of a queue within its nominal quota are not reclaimed by another queue."""
    policy = make_policy(spec)
    queues = [
        Queue("a", nominal={"gpu": 4}, cohort="c"),
        Queue("b", nominal={"gpu": 8}, cohort="c"),
    ]
    state = new_state(policy, [gpu_node("n1", 4)], queues)
    for i in range(4):
        occupy(state, job(f"a{i}", gpus=1, queue="a"), "n1")
    state.submit(job("b0", gpus=1, queue="b", submit=20))
    assert cycle(state, 30, policy).decisions == []


@pytest.mark.parametrize("spec", DRF)
def test_drf_preempts_by_priority_within_one_queue(spec: str) -> None:
    """Within one queue a higher-priority job preempts a lower-priority one."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 2)], [Queue("a", nominal={"gpu": 4})])
    occupy(state, job("low", gpus=2, queue="a", priority=0), "n1")
    state.submit(job("high", gpus=2, queue="a", priority=3, submit=1))
    result = cycle(state, 10, policy)
    assert [p.victim.job.id for p in result.preemptions] == ["low"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_lender_starts_once_the_reclaimed_job_stops(spec: str) -> None:
    """Cycles at one instant end with the lender bound, not with endless preemption."""
    policy = make_policy(spec)
    queues = [
        Queue("a", nominal={"gpu": 2}, cohort="c"),
        Queue("b", nominal={"gpu": 10}, cohort="c"),
        Queue("x"),
    ]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    for i in range(3):
        occupy(state, job(f"a{i}", gpus=2, queue="a"), "n1", now=float(i))
    state.submit(job("b0", gpus=4, queue="b", submit=10))
    state.submit(job("x0", gpus=2, queue="x", submit=11))
    started: list[str] = []
    for _ in range(4):
        result = step(state, policy, 20)
        started += bound(result)
        if not result.preemptions:
            break
    else:
        raise AssertionError(f"still preempting after 4 cycles; bound: {started}")
    assert "b0" in started


# -- what drf keeps from one cycle to the next ------------------------------------------


@pytest.mark.parametrize("spec", DRF)
def test_drf_admits_at_once_when_a_quota_is_raised(spec: str) -> None:
    """A quota verdict kept from an earlier cycle is dropped when the queue changes: a
    job waiting on its quota starts in the first cycle after the quota is raised."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 8)], [Queue("a", nominal={"gpu": 1})])
    occupy(state, job("a0", gpus=1, queue="a"), "n1")
    state.submit(job("a1", gpus=1, queue="a", submit=1))
    assert step(state, policy, 10).binds == []
    assert step(state, policy, 20).binds == []
    state.set_queue(Queue("a", nominal={"gpu": 2}))
    assert bound(step(state, policy, 30)) == ["a1"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_borrows_once_another_queue_of_the_cohort_frees_quota(spec: str) -> None:
    """A verdict on the cohort's idle quota follows the cohort's usage from cycle to
    cycle, though the waiting queue's own usage does not change."""
    policy = make_policy(spec)
    queues = [
        Queue("a", nominal={"gpu": 2}, cohort="c"),
        Queue("b", nominal={"gpu": 2}, cohort="c"),
    ]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    occupy(state, job("a0", gpus=2, queue="a"), "n1")
    occupy(state, job("b0", gpus=2, queue="b"), "n1")
    state.submit(job("a1", gpus=1, queue="a", submit=1))
    assert step(state, policy, 10).binds == []
    state.finish("b0", JobState.SUCCEEDED)
    assert bound(step(state, policy, 20)) == ["a1"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_preempts_a_lower_priority_job_that_started_since_the_last_cycle(spec: str) -> None:
    """What drf knows of each queue's running priorities follows the jobs that start and
    stop between cycles."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 8)], [Queue("a", nominal={"gpu": 8})])
    occupy(state, job("high", gpus=8, queue="a", priority=5), "n1")
    state.submit(job("mid", gpus=8, queue="a", priority=3, submit=1))
    assert cycle(state, 10, policy).decisions == []
    state.finish("high", JobState.SUCCEEDED)
    occupy(state, job("low", gpus=8, queue="a", priority=0), "n1", now=15)
    result = cycle(state, 20, policy)
    assert [(p.victim.job.id, p.preemptor) for p in result.preemptions] == [("low", "mid")]


@pytest.mark.parametrize("spec", DRF)
def test_drf_shares_follow_jobs_that_end_between_cycles(spec: str) -> None:
    """A queue whose job ended since the last cycle has the lower share and is served
    first, though the other queue's name comes first."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 2)], [Queue("z"), Queue("b")])
    occupy(state, job("z0", gpus=1, queue="z"), "n1")
    occupy(state, job("b0", gpus=1, queue="b"), "n1")
    state.submit(job("b1", gpus=1, queue="b", submit=1))
    state.submit(job("z1", gpus=1, queue="z", submit=2))
    assert step(state, policy, 10).binds == []
    state.finish("z0", JobState.SUCCEEDED)
    assert bound(step(state, policy, 20)) == ["z1"]


@pytest.mark.parametrize("spec", DRF)
def test_drf_holds_the_quota_a_preemption_frees_for_its_preemptor(spec: str) -> None:
    """A job that preempts for quota keeps the quota its victim gives back: another job
    of the queue may not take it in the same cycle (and then be preempted in turn, and
    so on forever); the preemptor starts in the next cycle."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 8)], [Queue("a", nominal={"gpu": 4})])
    occupy(state, job("low1", gpus=2, queue="a", priority=0), "n1")
    state.submit(job("high", gpus=4, queue="a", priority=1, submit=1))
    state.submit(job("low2", gpus=2, queue="a", priority=0, submit=2))
    first = step(state, policy, 10)
    assert [p.victim.job.id for p in first.preemptions] == ["low1"]
    assert first.binds == []
    assert bound(step(state, policy, 10)) == ["high"]
