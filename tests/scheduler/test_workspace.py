"""The cycle's view of the state: what freeing and giving back running jobs leaves."""

from __future__ import annotations

import random

from aios.scheduler import ClusterState, Code, Queue, RunningJob, make_policy
from aios.scheduler.state import NO_GPU
from aios.scheduler.workspace import Workspace
from tests.scheduler.harness import cpu_node, gpu_node, job, new_state, occupy

POLICY = make_policy("las")


def _busy_cluster() -> tuple[ClusterState, list[RunningJob]]:
    """Nodes of one kind with equal free GPUs share a bucket, so freeing and giving back
    a job reorders them."""
    state = new_state(
        POLICY,
        [gpu_node(f"n{i}", 8) for i in range(1, 5)]
        + [gpu_node("h1", 4, kind="H100"), cpu_node("c1"), cpu_node("c2")],
    )
    runs = [
        occupy(state, job("a", gpus=2), "n1"),
        occupy(state, job("b", gpus=2), "n2"),
        occupy(state, job("c", gpus=2), "n3"),
        occupy(state, job("d", gpus=2, kind="H100"), "h1"),
        occupy(state, job("e", cpus=2), "c1"),
        occupy(state, job("f", cpus=2), "c2"),
        occupy(state, job("g", cpus=1), "n2"),
        occupy(state, job("h", gpus=4), "n4"),
        occupy(state, job("i", gpus=2), "n1"),
    ]
    return state, runs


def _order(ws: Workspace) -> dict[str, list[list[str]]]:
    return {
        kind: [list(bucket) for bucket in by_level] for kind, by_level in ws.index.levels.items()
    }


def test_reorder_as_if_freed_leaves_the_index_as_freeing_and_giving_back_does() -> None:
    """Replaying on the index what unbinding jobs one by one and rebinding them in
    reverse does leaves the same nodes in the same order in every bucket, and the same
    free counts, without touching a node."""
    state, runs = _busy_cluster()
    chosen = [runs[8], runs[0], runs[6], runs[4], runs[3], runs[2]]
    freed = Workspace(state, POLICY, 0.0)
    for running in chosen:
        freed.unbind(running)
    for running in reversed(chosen):
        freed.rebind(running)
    replayed = Workspace(state, POLICY, 0.0)
    replayed.reorder_as_if_freed(chosen)
    assert _order(replayed) == _order(freed) != _order(Workspace(state, POLICY, 0.0))
    assert replayed.index.free_gpus == freed.index.free_gpus == state.index.free_gpus
    assert all(replayed.node(name) is node for name, node in state.nodes.items())
    assert NO_GPU in replayed.index.levels


def test_reorder_as_if_freed_matches_freeing_and_giving_back_for_any_choice() -> None:
    """The same holds for every order and subset of the running jobs: nodes that several
    of them share, and nodes that pass through a bucket on the way, included."""
    rng = random.Random(18)
    state, runs = _busy_cluster()
    for _ in range(200):
        chosen = rng.sample(runs, rng.randint(1, len(runs)))
        freed = Workspace(state, POLICY, 0.0)
        for running in chosen:
            freed.unbind(running)
        for running in reversed(chosen):
            freed.rebind(running)
        replayed = Workspace(state, POLICY, 0.0)
        replayed.reorder_as_if_freed(chosen)
        assert _order(replayed) == _order(freed)
        assert replayed.index.version == freed.index.version


def test_cohort_usage_follows_what_the_view_binds_and_frees() -> None:
    """The summed usage of a cohort in the view starts from the state's and moves with
    every job the view binds, frees or gives back."""
    state = ClusterState(
        [gpu_node("n1", 8)],
        [Queue("a", nominal={"gpu": 4}, cohort="c"), Queue("b", nominal={"gpu": 4}, cohort="c")],
    )
    running = occupy(state, job("a0", gpus=2, queue="a"), "n1")
    assert state.cohort_usage["c"]["gpu"] == 2
    ws = Workspace(state, POLICY, 0.0)
    status, allocations = ws.place(job("b0", gpus=3, queue="b"))
    assert status.ok
    ws.commit(job("b0", gpus=3, queue="b"), allocations)
    assert ws.cohort_usage("c")["gpu"] == 5
    ws.unbind(running)
    assert ws.cohort_usage("c")["gpu"] == 3
    ws.rebind(running)
    assert ws.cohort_usage("c")["gpu"] == 5
    assert state.cohort_usage["c"]["gpu"] == 2
    state.set_queue(Queue("a", nominal={"gpu": 4}))
    assert state.cohort_usage.get("c", {}).get("gpu", 0) == 0


def test_a_job_that_found_no_place_is_tried_again_once_anything_changes() -> None:
    """A failure kept from an earlier view stands only while the state, its nodes, its
    queues and the policy are the ones it was found under."""
    drf, fifo = make_policy("drf"), make_policy("fifo")
    state = ClusterState([gpu_node("n1", 2)], [Queue("a", nominal={"gpu": 1})])
    running = occupy(state, job("r", gpus=2, queue="a"), "n1")
    waiting = job("w", gpus=1, queue="a")
    assert not Workspace(state, drf, 0.0).place(waiting)[0].ok
    assert not Workspace(state, drf, 0.0).place(waiting)[0].ok
    state.release(running.job.id)
    assert Workspace(state, drf, 0.0).place(waiting)[0].ok
    occupy(state, job("r2", gpus=1, queue="a"), "n1")
    assert Workspace(state, drf, 0.0).place(waiting)[0].code is Code.WAIT
    state.set_queue(Queue("a", nominal={"gpu": 2}))
    assert Workspace(state, drf, 0.0).place(waiting)[0].ok
    state.set_queue(Queue("a", nominal={"gpu": 1}))
    assert Workspace(state, drf, 0.0).place(waiting)[0].code is Code.WAIT
    assert Workspace(state, fifo, 0.0).place(waiting)[0].ok
    big = job("big", gpus=2, queue="a")
    assert not Workspace(state, fifo, 0.0).place(big)[0].ok
    state.add_node(gpu_node("n2", 2))
    assert Workspace(state, fifo, 0.0).place(big)[0].ok
