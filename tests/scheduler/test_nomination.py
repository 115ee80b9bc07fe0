"""Preemption across cycles: a preemptor is served first, and while its victims are
still stopping (an executor's grace period) its room is held and nobody is preempted
twice."""

from __future__ import annotations

from aios.scheduler import Queue, cycle, make_policy
from tests.scheduler.harness import (
    apply,
    bound,
    cpu_node,
    gpu_node,
    job,
    new_state,
    occupy,
    replay,
)


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


def test_a_gang_holds_the_memory_its_victim_frees_once_not_once_per_replica() -> None:
    """A gang of two replicas on one node that preempts a 4 GiB job holds 44 GiB of the
    node's free memory beside the victim's 4 (48 in all), not 40: counting the victim's
    memory against each replica left 4 GiB that a low-priority job took in the same
    cycle, so the gang never fitted and preempted job after job at one instant (a
    livelock hypothesis found under drf, which lets others past a preemptor)."""
    policy = make_policy("drf")
    state = new_state(policy, [cpu_node("n1", cpus=8, memory="51G")])
    occupy(state, job("victim", memory="4G", priority=0), "n1")
    state.submit(job("gang", memory="24G", replicas=2, priority=1, submit=1))
    state.submit(job("filler", memory="4G", priority=0, submit=1))
    first = cycle(state, 1, policy)
    assert [p.victim.job.id for p in first.preemptions] == ["victim"]
    assert bound(first) == []  # 51 - 4 (victim) - 44 (held for the gang) = 3 GiB: no room
    apply(state, first, 1)  # the victim stops at once
    second = cycle(state, 1, policy)
    assert bound(second)[0] == "gang" and second.preemptions == []


def test_drf_does_not_preempt_forever_at_one_instant() -> None:
    """The example hypothesis found: one node, a two-replica gang of 24 GiB each behind
    non-preemptible jobs; the replay ends instead of preempting cycle after cycle."""
    node = cpu_node("n00", cpus=7, memory=51 * 2**30)
    jobs = [job("j00", memory="24G", replicas=2, priority=1, preemptible=False, queue="q0")]
    for n, (memory, priority, preemptible) in enumerate(
        [
            ("1G", 0, False),
            ("1G", 0, False),
            ("4G", 0, True),
            ("1G", 0, False),
            ("1G", 0, False),
            ("4G", 0, True),
            ("4G", 2, False),
            ("1G", 0, False),
            ("1G", 0, False),
            ("1G", 0, False),
            ("1G", 1, False),
        ],
        start=1,
    ):
        jobs.append(
            job(f"j{n:02}", memory=memory, priority=priority, preemptible=preemptible, queue="q0")
        )
    durations = {j.id: 1.0 for j in jobs} | {"j03": 2.0}
    out = replay("drf", [node], [Queue("q0")], jobs, durations, horizon=5e4)
    assert set(out.started) == {j.id for j in jobs}
