from __future__ import annotations

import pytest

from aios.resources import Allocation, Node, Resources
from aios.scheduler import Job, Unschedulable, cycle, make_policy
from tests.scheduler.harness import (
    ALL_POLICIES,
    BASE_POLICIES,
    bound,
    cpu_node,
    gpu_node,
    job,
    new_state,
    nodes_of,
    occupy,
)

BINPACK = (*BASE_POLICIES, "fifo+binpack", "drf+binpack")
SPREAD = tuple(f"{name}+spread" for name in BASE_POLICIES)


@pytest.mark.parametrize("spec", BINPACK)
def test_binpack_fills_the_fullest_gpu_node_that_fits(spec: str) -> None:
    """Binpack puts a GPU job on the node with the fewest free GPUs that still holds it."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1"), gpu_node("n2"), gpu_node("n3")])
    occupy(state, job("busy2", gpus=6), "n2")
    occupy(state, job("busy3", gpus=4), "n3")
    state.submit(job("two", gpus=2, submit=1))
    state.submit(job("three", gpus=3, submit=2))
    result = cycle(state, 10, policy)
    assert nodes_of(result, "two") == ["n2"]
    assert nodes_of(result, "three") == ["n3"]


@pytest.mark.parametrize("spec", SPREAD)
def test_spread_places_on_the_emptiest_gpu_node(spec: str) -> None:
    """Spread puts a GPU job on the node with the most free GPUs."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1"), gpu_node("n2"), gpu_node("n3")])
    occupy(state, job("busy1", gpus=6), "n1")
    occupy(state, job("busy3", gpus=4), "n3")
    state.submit(job("two", gpus=2, submit=1))
    result = cycle(state, 10, policy)
    assert nodes_of(result, "two") == ["n2"]


@pytest.mark.parametrize("spec", SPREAD)
def test_spread_spreads_replicas_of_one_cycle(spec: str) -> None:
    """Under spread, successive one-GPU jobs land on different nodes of an empty cluster."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", 4), gpu_node("n2", 4)])
    for i in range(2):
        state.submit(job(f"j{i}", gpus=1, submit=i))
    result = cycle(state, 10, policy)
    assert sorted(nodes_of(result, "j0") + nodes_of(result, "j1")) == ["n1", "n2"]


@pytest.mark.parametrize("spec", SPREAD)
def test_spread_puts_cpu_work_on_the_node_with_most_free_cores(spec: str) -> None:
    """Among CPU nodes spread picks the one with the largest free fraction of cores."""
    policy = make_policy(spec)
    state = new_state(policy, [cpu_node("c1"), cpu_node("c2"), cpu_node("c3")])
    occupy(state, job("busy1", cpus=4), "c1")
    occupy(state, job("busy3", cpus=2), "c3")
    state.submit(job("cpu", cpus=1))
    assert nodes_of(cycle(state, 0, policy), "cpu") == ["c2"]


@pytest.mark.parametrize("spec", BINPACK)
def test_binpack_keeps_cpu_work_off_gpu_nodes(spec: str) -> None:
    """A job without GPUs goes to a node without GPUs when one has room."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("g1", 4), cpu_node("c1")])
    state.submit(job("cpu", cpus=2))
    assert nodes_of(cycle(state, 0, policy), "cpu") == ["c1"]


@pytest.mark.parametrize("spec", ["fifo+spread", "drf+spread", "las+spread"])
def test_spread_keeps_cpu_work_off_gpu_nodes(spec: str) -> None:
    """Nodes without GPUs come first for a job without GPUs under spread too."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("g1", 4), cpu_node("c1")])
    state.submit(job("cpu", cpus=2))
    assert nodes_of(cycle(state, 0, policy), "cpu") == ["c1"]


@pytest.mark.parametrize("spec", ["fifo", "drf", "sjf"])
def test_binpack_fills_the_fullest_cpu_node_that_fits(spec: str) -> None:
    """Binpack puts a CPU job on the CPU node with the fewest free cores that holds it."""
    policy = make_policy(spec)
    state = new_state(policy, [cpu_node("c1"), cpu_node("c2")])
    occupy(state, job("busy", cpus=6), "c2")
    state.submit(job("cpu", cpus=2))
    assert nodes_of(cycle(state, 0, policy), "cpu") == ["c2"]


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_allocations_name_exact_cores_and_gpu_indices(spec: str) -> None:
    """Replicas get the lowest free core ids (after the reserved ones) and GPU indices,
    and a fraction of a core takes a whole core."""
    policy = make_policy(spec)
    node = Node.build("n1", cpus=8, memory="256G", gpus=4, gpu_kind="A100", reserved_cpus=2)
    state = new_state(policy, [node])
    state.submit(job("a", cpus=2, memory="8G", gpus=2, submit=0))
    state.submit(job("b", cpus=0.5, memory="4G", gpus=1, submit=1))
    result = cycle(state, 10, policy)
    assert result.binds[0].allocations == (
        Allocation("n1", cores=(2, 3), gpus=(0, 1), memory=8 * 1024**3, gpu_kind="A100"),
    )
    assert result.binds[1].allocations == (
        Allocation("n1", cores=(4,), gpus=(2,), memory=4 * 1024**3, gpu_kind="A100"),
    )


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_new_allocations_avoid_what_running_jobs_hold(spec: str) -> None:
    """A job bound next to a running one gets other core ids and GPU indices."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1", gpus=4, cpus=8)])
    occupy(state, job("running", cpus=3, gpus=2), "n1")
    state.submit(job("new", cpus=3, gpus=2))
    (allocation,) = cycle(state, 10, policy).binds[0].allocations
    assert allocation.cores == (3, 4, 5)
    assert allocation.gpus == (2, 3)


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_gpu_kind_request_lands_only_on_that_kind(spec: str) -> None:
    """A job that asks for A100s on a mixed cluster gets A100 nodes and A100 indices only."""
    policy = make_policy(spec)
    nodes = [gpu_node("h1", 8, "H100"), gpu_node("a1", 4, "A100"), gpu_node("a2", 4, "A100")]
    state = new_state(policy, nodes)
    state.submit(job("gang", gpus=2, kind="A100", replicas=3))
    (bind,) = cycle(state, 0, policy).binds
    assert {a.node for a in bind.allocations} <= {"a1", "a2"}
    assert all(a.gpu_kind == "A100" and len(a.gpus) == 2 for a in bind.allocations)


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_gpu_kind_nobody_has_is_unschedulable(spec: str) -> None:
    """A job asking for a GPU kind no node carries is Unschedulable, with a reason."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("a1", 8, "A100"), gpu_node("h1", 8, "H100")])
    state.submit(job("v100", gpus=1, kind="V100"))
    (decision,) = cycle(state, 0, policy).decisions
    assert isinstance(decision, Unschedulable)
    assert decision.job_id == "v100"
    assert decision.reason


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_job_without_a_kind_takes_any_free_gpu(spec: str) -> None:
    """A job that names no GPU kind runs on whichever kind has room."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("a1", 4, "A100"), gpu_node("h1", 4, "H100")])
    occupy(state, job("full", gpus=4, kind="A100"), "a1")
    state.submit(job("any", gpus=2))
    (bind,) = cycle(state, 0, policy).binds
    assert bind.allocations[0].node == "h1"
    assert bind.allocations[0].gpu_kind == "H100"


@pytest.mark.parametrize("spec", ["fifo", "drf", "las", "sjf"])
def test_kind_less_gang_is_placed_on_one_kind_that_holds_it(spec: str) -> None:
    """A gang that names no kind is placed when every replica fits on nodes of one kind."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("a1", 2, "A100"), gpu_node("h1", 4, "H100")])
    state.submit(job("gang", gpus=2, replicas=2))
    result = cycle(state, 0, policy)
    assert bound(result) == ["gang"], result.reasons
    assert {a.gpu_kind for a in result.binds[0].allocations} == {"H100"}


@pytest.mark.parametrize("spec", ["fifo", "drf", "las", "sjf"])
def test_gang_that_fits_only_by_mixing_kinds_is_unschedulable(spec: str) -> None:
    """A kind-less gang that no single GPU kind can hold is Unschedulable."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("a1", 2, "A100"), gpu_node("h1", 2, "H100")])
    state.submit(job("gang", gpus=2, replicas=2))
    result = cycle(state, 0, policy)
    assert [type(d) for d in result.decisions] == [Unschedulable]


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_gang_binds_every_replica_at_once(spec: str) -> None:
    """A gang that fits is one Bind with one allocation per replica, on distinct GPUs."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1"), gpu_node("n2")])
    state.submit(job("gang", gpus=4, replicas=3))
    (bind,) = cycle(state, 0, policy).binds
    assert len(bind.allocations) == 3
    held = [(a.node, g) for a in bind.allocations for g in a.gpus]
    assert len(held) == len(set(held)) == 12


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_gang_that_does_not_fit_binds_nothing(spec: str) -> None:
    """A gang that does not fit now produces no Bind at all, not a partial one."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1"), gpu_node("n2")])
    occupy(state, job("half", gpus=4, preemptible=False), "n1")
    state.submit(job("gang", gpus=8, replicas=2))
    result = cycle(state, 0, policy)
    assert result.decisions == []
    assert "gang" in result.reasons
    assert "gang" in state.pending


@pytest.mark.parametrize("spec", ALL_POLICIES)
@pytest.mark.parametrize(
    "too_big",
    [
        job("gpus", gpus=9),
        job("gang", gpus=8, replicas=3),
        job("cores", cpus=33),
        job("memory", memory="257G"),
    ],
    ids=lambda j: j.id,
)
def test_job_larger_than_the_cluster_is_unschedulable(spec: str, too_big: Job) -> None:
    """A job that would not fit even the empty cluster is Unschedulable with a reason, and a
    job behind it is still bound in the same cycle (even under a strict order)."""
    policy = make_policy(spec)
    state = new_state(policy, [gpu_node("n1"), gpu_node("n2")], pending=[too_big])
    state.submit(job("small", gpus=1, submit=1))
    result = cycle(state, 0, policy)
    decision = result.decisions[0]
    assert isinstance(decision, Unschedulable)
    assert decision.job_id == too_big.id
    assert decision.reason
    assert bound(result) == ["small"]


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_node_selector_keeps_replicas_on_matching_nodes(spec: str) -> None:
    """A job with a node selector lands only on nodes carrying every selected label; a
    selector no node matches makes it Unschedulable."""
    policy = make_policy(spec)
    nodes = [gpu_node("x", 4, labels={"zone": "x"}), gpu_node("y", 4, labels={"zone": "y"})]
    state = new_state(policy, nodes)
    state.submit(job("in-y", gpus=1, replicas=2, node_selector=(("zone", "y"),)))
    state.submit(job("nowhere", gpus=1, node_selector=(("zone", "q"),), submit=1))
    result = cycle(state, 0, policy)
    assert nodes_of(result, "in-y") == ["y", "y"]
    assert [d.job_id for d in result.decisions if isinstance(d, Unschedulable)] == ["nowhere"]


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_custom_resources_are_placed_and_counted(spec: str) -> None:
    """A job asking for a custom resource goes to a node that has it and holds it; one
    asking for more than any node has is Unschedulable."""
    policy = make_policy(spec)
    nodes = [Node.build("plain", 8, "64G"), Node.build("nic", 8, "64G", custom={"nic": 2})]
    state = new_state(policy, nodes)
    state.submit(Job("one", Resources.of(1, "1G", custom={"nic": 1})))
    state.submit(Job("three", Resources.of(1, "1G", custom={"nic": 3}), submit_time=1))
    result = cycle(state, 0, policy)
    (bind,) = result.binds
    assert bind.allocations[0].node == "nic"
    assert bind.allocations[0].custom == (("nic", 1),)
    assert [d.job_id for d in result.decisions if isinstance(d, Unschedulable)] == ["three"]
