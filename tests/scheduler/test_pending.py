from __future__ import annotations

import pytest

from aios.errors import InvalidInput
from aios.resources import Resources
from aios.scheduler import ClusterState, JobState, Queue, make_policy
from aios.scheduler.pending import PendingJobs, fifo_key
from tests.scheduler.harness import gpu_node, job, new_state, occupy


def test_pending_jobs_track_membership() -> None:
    """Added jobs can be counted, found and removed by id."""
    pending = PendingJobs(fifo_key)
    a, b = job("a"), job("b", submit=1)
    pending.add(a)
    pending.add(b)
    assert len(pending) == 2
    assert "a" in pending and pending.get("a") == a
    assert pending.remove("a") == a
    assert "a" not in pending and pending.get("a") is None
    assert [j.id for j in pending.jobs()] == ["b"]


def test_pending_jobs_group_by_queue_and_shape_in_key_order() -> None:
    """Jobs of one queue and one shape share a group sorted by the order key."""
    pending = PendingJobs(fifo_key)
    for j in [job("late", submit=5), job("early", submit=1), job("other", gpus=1, submit=0)]:
        pending.add(j)
    groups = {g.shape: [e[2].id for e in g.entries] for g in pending.groups()}
    assert sorted(groups.values()) == [["early", "late"], ["other"]]


def test_removing_the_last_job_of_a_group_drops_the_group() -> None:
    """Empty groups do not linger."""
    pending = PendingJobs(fifo_key)
    pending.add(job("only"))
    pending.remove("only")
    assert list(pending.groups()) == []


def test_oldest_yields_the_longest_waiting_first() -> None:
    """``oldest`` orders by the time jobs entered their queue, whatever the policy order."""
    pending = PendingJobs(lambda j: -j.enqueued)
    for j in [job("b", submit=2), job("c", submit=3, gpus=1), job("a", submit=1)]:
        pending.add(j)
    pending.remove("b")
    assert [j.id for j in pending.oldest()] == ["a", "c"]


def test_jobs_with_dependencies_are_indexed_until_removed() -> None:
    """Jobs with dependencies are listed for the cycle to resolve, and dropped on removal."""
    pending = PendingJobs(fifo_key)
    pending.add(job("child", dependencies=("parent",)))
    pending.add(job("free"))
    assert list(pending.with_dependencies) == ["child"]
    pending.remove("child")
    assert pending.with_dependencies == {}


def test_submit_rejects_unknown_queues_and_known_ids() -> None:
    """Submitting to a queue that does not exist, or a job id already pending or running,
    is InvalidInput."""
    state = ClusterState([gpu_node("n1")])
    with pytest.raises(InvalidInput, match="queue"):
        state.submit(job("j", queue="nope"))
    state.submit(job("j"))
    with pytest.raises(InvalidInput, match="already"):
        state.submit(job("j"))
    occupy(state, job("r", gpus=1), "n1")
    with pytest.raises(InvalidInput, match="already"):
        state.submit(job("r"))


def test_add_node_rejects_a_duplicate_name() -> None:
    """Two nodes may not share a name."""
    state = ClusterState([gpu_node("n1")])
    with pytest.raises(InvalidInput, match="n1"):
        state.add_node(gpu_node("n1"))


def test_bind_takes_resources_and_counts_usage() -> None:
    """Binding moves a job from pending to running, takes its allocation from the node and
    adds the whole gang to its queue's usage."""
    state = ClusterState([gpu_node("n1", 8, cpus=16)], [Queue("q")])
    gang = job("g", cpus=2, memory="4G", gpus=2, replicas=2, queue="q")
    state.submit(gang)
    occupy(state, gang, "n1", now=5)
    assert "g" not in state.pending and state.running["g"].started == 5
    assert state.nodes["n1"].free_gpu_count() == 4
    assert len(state.nodes["n1"].free_cores) == 12
    assert state.usage["q"] == {"cpu": 4000, "memory": 8 * 1024**3, "gpu": 4}
    assert state.nodes["n1"].allocated() == Resources(4000, 8 * 1024**3, 4, "A100")


def test_finish_releases_a_running_job_and_records_the_end() -> None:
    """Finishing a running job frees its resources and usage and records its state."""
    state = ClusterState([gpu_node("n1", 8)])
    occupy(state, job("r", gpus=8), "n1")
    state.finish("r", JobState.SUCCEEDED)
    assert state.running == {}
    assert state.nodes["n1"].free_gpu_count() == 8
    assert state.nodes["n1"].free_cores == list(range(32))
    assert state.usage["default"]["gpu"] == 0
    assert state.finished["r"] is JobState.SUCCEEDED


def test_finish_drops_a_pending_job() -> None:
    """Finishing a pending job (cancelled, unschedulable) removes it from pending."""
    state = ClusterState([gpu_node("n1")])
    state.submit(job("p"))
    state.finish("p", JobState.CANCELLED)
    assert "p" not in state.pending
    assert state.finished["p"] is JobState.CANCELLED


def test_requeue_credits_service_and_requeues_at_now() -> None:
    """A requeued job is pending again with the time it re-entered its queue and the
    service it received (GPUs × replicas × seconds run)."""
    state = ClusterState([gpu_node("n1", 8)])
    occupy(state, job("r", gpus=2, replicas=2, attained=100.0), "n1", now=10)
    requeued = state.requeue("r", 60)
    assert requeued.queued_at == 60 and requeued.enqueued == 60
    assert requeued.attained_service == 100.0 + 2 * 2 * 50
    assert state.pending.get("r") == requeued
    assert "r" not in state.running
    assert state.nodes["n1"].free_gpu_count() == 8


def test_reorder_resorts_pending_jobs_for_a_new_policy() -> None:
    """After ``reorder`` the pending jobs follow the new policy's order key."""
    state = ClusterState([gpu_node("n1")])
    state.submit(job("low", priority=0, submit=0))
    state.submit(job("high", priority=9, submit=1))
    policy = make_policy("priority")
    state.reorder(policy.order_key)
    assert state.pending.order_key == policy.order_key
    assert {j.id for j in state.pending.jobs()} == {"low", "high"}


def test_capacity_sums_allocatable_resources() -> None:
    """Cluster capacity is the sum of every node's allocatable resources."""
    policy = make_policy("fifo")
    state = new_state(policy, [gpu_node("a", 4, cpus=8, memory="32G"), gpu_node("b", 2, cpus=4)])
    assert state.capacity.gpus == 6
    assert state.capacity.cpu == 12_000


def test_removed_node_gets_no_more_work() -> None:
    """A node taken out of the state leaves the index: nothing is placed on it again."""
    from aios.scheduler import cycle, make_policy
    from tests.scheduler.harness import gpu_node, job, new_state

    policy = make_policy("fifo")
    state = new_state(policy, [gpu_node("n1", gpus=4), gpu_node("n2", gpus=4)])
    state.remove_node("n1")
    state.submit(job("a", gpus=2))
    state.submit(job("b", gpus=2, submit=1))
    result = cycle(state, 2, policy)
    assert {a.node for d in result.binds for a in d.allocations} == {"n2"}
