"""Preemption across cycles: a preemptor is served first, and while its victims are
still stopping (an executor's grace period) its room is held and nobody is preempted
twice."""

from __future__ import annotations

from aios.scheduler import cycle, make_policy
from tests.scheduler.harness import bound, gpu_node, job, new_state, occupy


def test_victims_still_stopping_are_not_preempted_again_and_their_room_is_held() -> None:
    """With its victim told to stop but still running, the preemptor is neither bound nor
    the cause of a second preemption, and a lower-priority job cannot take its room."""
    policy = make_policy("priority")
    state = new_state(policy, [gpu_node("n1", gpus=4)])
    occupy(state, job("low-a", gpus=2, priority=0), "n1")
    occupy(state, job("low-b", gpus=1, priority=0), "n1")
    state.submit(job("high", gpus=3, priority=10, submit=1))
    first = cycle(state, 1, policy)
    victims = [p.victim.job.id for p in first.preemptions]
    assert victims == ["low-a"] and first.binds == []
    state.preempting_for("low-a", "high", 1)

    state.submit(job("filler", gpus=1, priority=0, submit=2))
    second = cycle(state, 2, policy)
    assert second.preemptions == []
    assert bound(second) == []  # the free GPU beside low-a's two is held for "high"

    state.requeue("low-a", 3)  # the victim has stopped
    third = cycle(state, 3, policy)
    assert bound(third)[0] == "high"


def test_nominated_job_goes_first_in_the_next_cycle() -> None:
    """A job whose preemption freed room is bound before jobs ahead of it in queue order."""
    policy = make_policy("las")
    state = new_state(policy, [gpu_node("n1", gpus=4)])
    occupy(state, job("served", gpus=4, attained=10_000.0), "n1")
    state.submit(job("fresh", gpus=4, submit=5))
    first = cycle(state, 5, policy)
    assert [p.victim.job.id for p in first.preemptions] == ["served"]
    state.requeue("served", 5, preemptor="fresh")
    assert state.nominated == {"fresh": 5}
    second = cycle(state, 5, policy)
    assert bound(second) == ["fresh"]
    state.bind(second.binds[0].job, second.binds[0].allocations, 5)
    assert state.nominated == {}
