from __future__ import annotations

from dataclasses import replace

import pytest

from aios.scheduler import ClusterState, JobState, Policy, Preempt, Queue, cycle, make_policy
from tests.scheduler.harness import (
    ALL_POLICIES,
    apply,
    bound,
    cpu_node,
    gpu_node,
    job,
    new_state,
    nodes_of,
    occupy,
    step,
)


def _with_spread(table: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """Expands a policy → expectation table with the ``+spread`` variant of each policy."""
    rows = list(table.items())
    return rows + [(f"{spec}+spread", expected) for spec, expected in rows]


STRICT_ORDER = {
    "fifo": [],
    "fifo+backfill": [],
    "priority": [],
    "priority+backfill": [],
    "drf": ["small"],
    "las": ["small"],
    "sjf": ["small"],
}


@pytest.mark.parametrize(("spec", "expected"), _with_spread(STRICT_ORDER))
def test_a_blocked_head_holds_back_later_jobs_only_under_strict_order(
    spec: str, expected: list[str]
) -> None:
    """Under fifo and priority a head that does not fit blocks a smaller later job (with
    backfill too, when the later job has no estimate); other policies start the later job."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1")])
    occupy(state, job("running", gpus=4, preemptible=False), "n1")
    state.submit(job("head", gpus=8, submit=1))
    state.submit(job("small", gpus=1, submit=2))
    result = cycle(state, 10, policy)
    assert bound(result) == expected
    assert result.preemptions == []


def _backfill_scenario(
    spec: str, estimate: float | None, time_limit: float | None = None
) -> tuple[Policy, ClusterState]:
    """n1 has 2 of 4 GPUs taken by a job ending at 100, n2 is full until 1000; the head
    wants a whole node, so it is reserved n1 from t=100; ``later`` wants 2 GPUs."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4), gpu_node("n2", 4)])
    occupy(state, job("r1", gpus=2, estimate=100), "n1", now=0)
    occupy(state, job("r2", gpus=4, estimate=1000), "n2", now=0)
    state.submit(job("head", gpus=4, submit=1))
    later = job("later", gpus=2, submit=2, estimate=estimate)
    state.submit(replace(later, time_limit=time_limit))
    return policy, state


BACKFILL = ["fifo+backfill", "priority+backfill", "fifo+backfill+spread"]


@pytest.mark.parametrize("spec", BACKFILL)
@pytest.mark.parametrize("estimate", [50.0, 90.0])
def test_backfill_starts_a_job_that_ends_before_the_shadow_time(spec: str, estimate: float) -> None:
    """EASY backfill starts a later job on the reserved node if it ends by the time the
    blocked head can start (the shadow time), and marks the Bind as backfilled."""
    policy, state = _backfill_scenario(spec, estimate)
    result = cycle(state, 10, policy)
    assert bound(result) == ["later"]
    assert result.binds[0].backfilled
    assert nodes_of(result, "later") == ["n1"]
    assert "head" in result.reasons


@pytest.mark.parametrize("spec", BACKFILL)
def test_backfill_trusts_a_time_limit_as_the_runtime_bound(spec: str) -> None:
    """A later job without an estimate but with a time limit that ends before the shadow
    time is backfilled."""
    policy, state = _backfill_scenario(spec, None, time_limit=50.0)
    assert bound(cycle(state, 10, policy)) == ["later"]


@pytest.mark.parametrize("spec", BACKFILL)
@pytest.mark.parametrize("estimate", [91.0, 5000.0, None])
def test_backfill_keeps_a_job_ending_after_the_shadow_time_off_the_reserved_nodes(
    spec: str, estimate: float | None
) -> None:
    """A later job that would run past the shadow time (or has no estimate) may not take
    the reserved node, so here it does not start."""
    policy, state = _backfill_scenario(spec, estimate)
    result = cycle(state, 10, policy)
    assert result.decisions == []


@pytest.mark.parametrize("spec", BACKFILL)
def test_backfill_starts_a_long_job_away_from_the_reserved_nodes(spec: str) -> None:
    """A long later job may start at once on a node the head's reservation does not use."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4), gpu_node("n2", 4), gpu_node("n3", 4)])
    occupy(state, job("r1", gpus=2, estimate=100), "n1", now=0)
    occupy(state, job("r2", gpus=4, estimate=1000), "n2", now=0)
    occupy(state, job("r3", gpus=2, estimate=2000), "n3", now=0)
    state.submit(job("head", gpus=4, submit=1))
    state.submit(job("later", gpus=2, submit=2, estimate=5000))
    result = cycle(state, 10, policy)
    assert nodes_of(result, "later") == ["n3"]


@pytest.mark.parametrize("spec", ["fifo", "priority"])
def test_strict_order_without_backfill_never_backfills(spec: str) -> None:
    """Without the backfill option even a job that would end before the shadow waits."""
    policy, state = _backfill_scenario(spec, 50.0)
    assert cycle(state, 10, policy).decisions == []


@pytest.mark.parametrize("spec", ["fifo+backfill", "priority+backfill"])
def test_backfill_reservation_lets_the_head_start_when_its_nodes_free_up(spec: str) -> None:
    """Once the job the reservation waited for ends, the head starts on the reserved node."""
    policy, state = _backfill_scenario(spec, 50.0)
    step(state, policy, 10)
    state.finish("later", JobState.SUCCEEDED)
    state.finish("r1", JobState.SUCCEEDED)
    assert nodes_of(step(state, policy, 100), "head") == ["n1"]


PREEMPTS = {
    "fifo": [],
    "fifo+backfill": [],
    "priority": ["low"],
    "priority+backfill": ["low"],
    "drf": ["low"],
    "las": [],
    "sjf": [],
}
"""Both jobs are in the default queue: drf preempts by priority within one queue."""


@pytest.mark.parametrize(("spec", "victims"), _with_spread(PREEMPTS))
def test_priority_and_drf_preempt_for_a_higher_priority_job(spec: str, victims: list[str]) -> None:
    """A higher-priority job that does not fit preempts a lower-priority preemptible one
    of its queue under ``priority`` and ``drf``, never in the same cycle as it is bound;
    the other policies do not preempt for priority."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    occupy(state, job("low", gpus=4, priority=0), "n1", now=90)
    state.submit(job("high", gpus=4, priority=5, submit=95))
    result = cycle(state, 100, policy)
    assert [p.victim.job.id for p in result.preemptions] == victims
    assert all(p.preemptor == "high" for p in result.preemptions)
    assert result.binds == []


@pytest.mark.parametrize("spec", ["priority", "priority+backfill", "priority+spread"])
def test_preemptor_starts_in_the_next_cycle_after_the_victim_is_requeued(spec: str) -> None:
    """The caller requeues the victim; the next cycle binds the preemptor where it ran."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    occupy(state, job("low", gpus=4), "n1", now=0)
    state.submit(job("high", gpus=4, priority=5, submit=5))
    first = step(state, policy, 10)
    assert isinstance(first.decisions[0], Preempt)
    assert "low" in state.pending and "low" not in state.running
    second = step(state, policy, 10)
    assert bound(second) == ["high"]
    assert second.preemptions == []
    assert "low" in state.pending


@pytest.mark.parametrize("spec", ["priority", "priority+backfill"])
def test_priority_never_preempts_non_preemptible_or_equal_priority_jobs(spec: str) -> None:
    """Non-preemptible jobs and jobs of equal priority are never victims."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    occupy(state, job("pinned", gpus=2, priority=0, preemptible=False), "n1")
    occupy(state, job("peer", gpus=2, priority=5), "n1")
    state.submit(job("high", gpus=4, priority=5, submit=1))
    assert cycle(state, 10, policy).decisions == []


@pytest.mark.parametrize("spec", ["priority", "priority+backfill"])
def test_priority_preempts_the_fewest_lowest_priority_victims(spec: str) -> None:
    """Victims are taken lowest priority first, and only as many as the job needs."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 6)])
    occupy(state, job("p2", gpus=2, priority=2), "n1")
    occupy(state, job("p0", gpus=2, priority=0), "n1")
    occupy(state, job("p1", gpus=2, priority=1), "n1")
    state.submit(job("high", gpus=2, priority=5, submit=1))
    result = cycle(state, 10, policy)
    assert [p.victim.job.id for p in result.preemptions] == ["p0"]


@pytest.mark.parametrize("spec", ["las", "las+spread"])
def test_las_serves_the_least_attained_service_first(spec: str) -> None:
    """A job that has had little service goes before an older one that has had more."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    state.submit(job("served", gpus=4, submit=0, attained=5000.0))
    state.submit(job("fresh", gpus=4, submit=100))
    assert bound(cycle(state, 200, policy)) == ["fresh"]


@pytest.mark.parametrize("spec", ["las", "las+spread"])
def test_las_preempts_a_demoted_job_for_a_fresh_one(spec: str) -> None:
    """A running job past the first threshold (3600 GPU-s) is preempted for a fresh job,
    requeued with the service it received, and the fresh job starts next cycle."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    occupy(state, job("long", gpus=4), "n1", now=0)
    state.submit(job("fresh", gpus=4, submit=900))
    first = step(state, policy, 1000)
    assert [(p.victim.job.id, p.preemptor) for p in first.preemptions] == [("long", "fresh")]
    assert first.binds == []
    requeued = state.pending.get("long")
    assert requeued is not None and requeued.attained_service == 4000.0
    assert bound(step(state, policy, 1000)) == ["fresh"]


def _settle(state: ClusterState, policy: Policy, now: float, cycles: int = 4) -> list[str]:
    """Runs cycles at one instant, as the simulator does, until one preempts nothing;
    returns the ids bound, or fails if the cycles keep preempting."""
    started: list[str] = []
    for _ in range(cycles):
        result = step(state, policy, now)
        started += bound(result)
        if not result.preemptions:
            return started
    raise AssertionError(f"still preempting after {cycles} cycles; bound so far: {started}")


@pytest.mark.parametrize("spec", ["las", "las+spread"])
def test_las_preemptor_starts_once_its_victim_stops(spec: str) -> None:
    """The free room a preemptor needs besides its victims is not given to a later job, so
    the preemptor starts in the next cycle and the preempting stops."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    occupy(state, job("demoted", gpus=2), "n1", now=0)
    state.submit(job("served", gpus=2, submit=0, attained=5000.0))
    state.submit(job("fresh", gpus=4, submit=1500))
    assert "fresh" in _settle(state, policy, 2000)


@pytest.mark.parametrize("spec", ["las", "las+spread"])
def test_las_does_not_preempt_a_job_in_the_same_level(spec: str) -> None:
    """A running job still below the first threshold is not preempted for a fresh one."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    occupy(state, job("young", gpus=4), "n1", now=0)
    state.submit(job("fresh", gpus=4, submit=100))
    assert cycle(state, 800, policy).decisions == []


@pytest.mark.parametrize("spec", ["las", "las+spread"])
def test_las_does_not_preempt_a_non_preemptible_demoted_job(spec: str) -> None:
    """A demoted job that is not preemptible keeps running."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    occupy(state, job("long", gpus=4, preemptible=False), "n1", now=0)
    state.submit(job("fresh", gpus=4, submit=900))
    assert cycle(state, 1000, policy).decisions == []


SHORTEST_FIRST = {"sjf": ["short", "medium", "long"], "fifo": ["long", "medium", "short"]}


@pytest.mark.parametrize(("spec", "order"), _with_spread(SHORTEST_FIRST))
def test_sjf_starts_the_shortest_estimate_first(spec: str, order: list[str]) -> None:
    """SJF starts jobs by duration estimate (time limit when there is none), FIFO by arrival."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4)])
    state.submit(job("long", gpus=4, submit=0, estimate=1000))
    state.submit(replace(job("medium", gpus=4, submit=1), time_limit=100.0))
    state.submit(job("short", gpus=4, submit=2, estimate=10))
    started = []
    for now in (10.0, 20.0, 30.0):
        result = step(state, policy, now)
        started += bound(result)
        for b in result.binds:
            state.finish(b.job.id, JobState.SUCCEEDED)
    assert started == order


LOWEST_SHARE = {"drf": ["b1"], "fifo": ["a1"], "las": ["a1"], "sjf": ["a1"]}


@pytest.mark.parametrize(("spec", "expected"), _with_spread(LOWEST_SHARE))
def test_drf_serves_the_queue_with_the_lowest_dominant_share_first(
    spec: str, expected: list[str]
) -> None:
    """With room for one more job, drf gives it to the queue using less of the cluster even
    though the other queue's job arrived first."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 8)], [Queue("a"), Queue("b")])
    occupy(state, job("a0", gpus=4, queue="a", preemptible=False), "n1")
    state.submit(job("a1", gpus=4, queue="a", submit=1))
    state.submit(job("b1", gpus=4, queue="b", submit=2))
    assert bound(cycle(state, 10, policy)) == expected


def test_drf_divides_shares_by_queue_weight() -> None:
    """A queue with four times the weight counts a quarter of its dominant share."""
    policy = make_policy("drf")
    queues = [Queue("heavy", weight=4.0), Queue("light")]
    state = new_state(policy, [gpu_node("n1", 8)], queues)
    occupy(state, job("h0", gpus=4, queue="heavy", preemptible=False), "n1")
    occupy(state, job("l0", gpus=2, queue="light", preemptible=False), "n1")
    state.submit(job("l1", gpus=2, queue="light", submit=1))
    state.submit(job("h1", gpus=2, queue="heavy", submit=2))
    assert bound(cycle(state, 10, policy)) == ["h1"]


def test_drf_alternates_between_equal_queues_within_one_cycle() -> None:
    """Within one cycle drf recomputes shares after each bind, so equal queues alternate."""
    policy = make_policy("drf")
    state = new_state(policy, [gpu_node("n1", 8)], [Queue("a"), Queue("b")])
    for i in range(4):
        state.submit(job(f"a{i}", gpus=1, queue="a", submit=i))
        state.submit(job(f"b{i}", gpus=1, queue="b", submit=i + 0.5))
    result = cycle(state, 10, policy)
    queues = [b.job.queue for b in result.binds]
    assert queues == ["a", "b"] * 4


STARVATION_GUARDED = ["las", "sjf", "drf", "las+spread", "sjf+spread", "drf+spread"]


def _starving_scenario(
    spec: str, limit: float | None, estimate: float
) -> tuple[Policy, ClusterState]:
    """A whole-node job has waited since t=0 while a one-GPU job (ending at 300) runs; a
    small job arriving at 150 would overtake it."""
    policy = replace(make_policy(spec), starvation_limit=limit)
    state = new_state(policy, [gpu_node("n1", 4)])
    occupy(state, job("running", gpus=1, estimate=300, preemptible=False), "n1", now=0)
    state.submit(job("big", gpus=4, submit=0, estimate=10_000))
    state.submit(job("small", gpus=1, submit=150, estimate=estimate))
    return policy, state


@pytest.mark.parametrize("spec", STARVATION_GUARDED)
def test_without_the_starvation_guard_small_jobs_overtake_a_big_one(spec: str) -> None:
    """Without a starvation limit a small later job starts past a big waiting one."""
    policy, state = _starving_scenario(spec, None, 500)
    assert bound(cycle(state, 200, policy)) == ["small"]


@pytest.mark.parametrize("spec", STARVATION_GUARDED)
def test_starvation_guard_reserves_for_a_long_waiting_job(spec: str) -> None:
    """Past the starvation limit the longest-waiting job gets a reservation, so a small
    job that would run past its shadow time no longer overtakes it."""
    policy, state = _starving_scenario(spec, 100.0, 500)
    result = cycle(state, 200, policy)
    assert result.decisions == []
    assert "big" in result.reasons


@pytest.mark.parametrize("spec", STARVATION_GUARDED)
def test_starvation_guard_still_backfills_jobs_that_end_in_time(spec: str) -> None:
    """A small job that ends before the starving job's shadow time may still start."""
    policy, state = _starving_scenario(spec, 100.0, 50)
    assert bound(cycle(state, 200, policy)) == ["small"]


@pytest.mark.parametrize("spec", STARVATION_GUARDED)
def test_starvation_guard_starts_the_starving_job_when_it_fits(spec: str) -> None:
    """Once the running job ends, the starving job starts before any later job."""
    policy, state = _starving_scenario(spec, 100.0, 500)
    step(state, policy, 200)
    state.finish("running", JobState.SUCCEEDED)
    assert bound(step(state, policy, 300)) == ["big"]


@pytest.mark.parametrize("spec", STARVATION_GUARDED)
def test_starvation_guard_follows_the_longest_waiting_jobs_between_cycles(spec: str) -> None:
    """When the longest-waiting job leaves the queue, the next one is served in the next
    cycle: what a cycle kept of the oldest jobs does not outlive them."""
    policy, state = _starving_scenario(spec, 100.0, 500)
    state.submit(job("next", gpus=3, submit=1, estimate=10_000))
    assert step(state, policy, 200).decisions == []
    state.finish("big", JobState.CANCELLED)
    assert bound(step(state, policy, 210)) == ["next"]


@pytest.mark.parametrize("spec", ["fifo+backfill", "priority+backfill"])
@pytest.mark.parametrize(("depth", "expected"), [(4, []), (5, ["short"])])
def test_jobs_passed_over_behind_a_reservation_count_toward_the_backfill_depth(
    spec: str, depth: int, expected: list[str]
) -> None:
    """Behind a reservation, later jobs of a shape with no room off the reserved nodes
    are passed over unless they end in time, and each counts toward the backfill depth:
    a short job behind four long ones is tried only with a depth of five."""
    policy = replace(make_policy(spec), backfill_depth=depth)
    state = new_state(policy, [gpu_node("n1", 8), gpu_node("n2", 8)])
    occupy(state, job("r1", gpus=6, estimate=1000), "n1", now=0)
    occupy(state, job("r2", gpus=8, estimate=5000), "n2", now=0)
    state.submit(job("head", gpus=8, submit=1))
    for i in range(4):
        state.submit(job(f"long{i}", gpus=1, submit=2 + i, estimate=5000))
    state.submit(job("short", gpus=1, submit=10, estimate=100))
    result = cycle(state, 10, policy)
    assert bound(result) == expected
    assert result.considered == 6


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_cycle_leaves_the_state_untouched(spec: str) -> None:
    """A cycle that binds, preempts and rejects changes nothing in the ClusterState."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4), cpu_node("c1")])
    occupy(state, job("low", gpus=4, priority=0), "n1", now=0)
    state.submit(job("high", gpus=4, priority=9, submit=1))
    state.submit(job("cpu", cpus=2, submit=2))
    state.submit(job("huge", gpus=64, submit=3))
    before = _snapshot(state)
    first = cycle(state, 5000, policy)
    assert _snapshot(state) == before
    assert cycle(state, 5000, policy).decisions == first.decisions
    apply(state, first, 5000)


def _snapshot(state: ClusterState) -> object:
    nodes = {
        name: (tuple(n.free_cores), n.free_memory, repr(n.free_gpus), repr(n.free_custom))
        for name, n in state.nodes.items()
    }
    usage = {q: dict(u) for q, u in state.usage.items()}
    return nodes, usage, sorted(state.running), sorted(j.id for j in state.pending.jobs())


@pytest.mark.parametrize("spec", ["fifo", "drf", "sjf"])
def test_a_policy_gives_the_same_decisions_whatever_states_it_saw_before(spec: str) -> None:
    """The cycle is a pure function of (state, now, policy): a policy used before on a
    different cluster decides as a fresh one does."""
    policy = make_policy(spec)
    small = new_state(policy, [gpu_node("n1", 2)], pending=[job("j", gpus=4)])
    big = new_state(policy, [gpu_node("n1", 8)], pending=[job("j", gpus=4)])
    cycle(small, 0, policy)
    assert bound(cycle(big, 0, policy)) == ["j"]
