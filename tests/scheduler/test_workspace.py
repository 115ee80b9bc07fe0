"""The cycle's view of the state: what freeing and giving back running jobs leaves."""

from __future__ import annotations

from aios.scheduler import ClusterState, Code, Queue, make_policy
from aios.scheduler.workspace import Workspace
from tests.scheduler.harness import gpu_node, job, occupy

POLICY = make_policy("las")


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
