"""The cluster's history as a trace: finished jobs and nodes in, trace jobs and a cluster out."""

from __future__ import annotations

import pytest

from aios.errors import InvalidInput
from aios.simulator import ClusterSpec, TraceJob, simulate
from aios.simulator.history import (
    FinishedJob,
    History,
    NodeCapacity,
    QueueShare,
    cluster_from_nodes,
    replay_inputs,
    trace_from_history,
)

GIB = 1 << 30


def job(
    job_id: int,
    submitted: float,
    started: float,
    finished: float,
    queue: str = "default",
    gpus: int = 0,
    replicas: int = 1,
) -> FinishedJob:
    return FinishedJob(
        id=job_id,
        queue=queue,
        state="succeeded",
        submitted_at=submitted,
        started_at=started,
        finished_at=finished,
        cpu=1500,
        memory=2 * GIB,
        gpus=gpus,
        replicas=replicas,
    )


def test_trace_starts_at_the_first_submission_and_keeps_the_last_attempts_run_time() -> None:
    """Submit times become offsets from the earliest one, in submit order; a job's
    duration is its last attempt's start to end, not its time since submission."""
    jobs = [
        job(2, 1_000_050.0, 1_000_060.0, 1_000_090.0),
        job(1, 1_000_000.0, 1_000_010.0, 1_000_015.5),
    ]
    trace = trace_from_history(jobs)
    assert [t.id for t in trace] == ["job-1", "job-2"]
    assert [t.submit for t in trace] == [0.0, 50.0]
    assert [t.duration for t in trace] == [5.5, 30.0]


def test_trace_job_asks_for_the_whole_gang() -> None:
    """Per-replica resources are multiplied by the replicas; cores are millicores / 1000;
    the tenant is the queue."""
    (row,) = trace_from_history([job(7, 0.0, 1.0, 2.0, queue="vision", gpus=2, replicas=3)])
    assert row == TraceJob("job-7", 0.0, 1.0, 6, 4.5, 6 * GIB, "vision")


@pytest.mark.parametrize(
    ("submitted", "ids"),
    [
        ((5.0, 5.0, 1.0), ["job-3", "job-1", "job-2"]),
        ((1.0, 2.0, 3.0), ["job-1", "job-2", "job-3"]),
    ],
)
def test_trace_order_is_submit_time_then_id(submitted: tuple[float, ...], ids: list[str]) -> None:
    """Jobs submitted at the same instant keep their id order."""
    jobs = [job(i + 1, t, t, t + 1) for i, t in enumerate(submitted)]
    assert [t.id for t in trace_from_history(jobs)] == ids


def test_a_clock_step_never_makes_a_negative_duration() -> None:
    (row,) = trace_from_history([job(1, 0.0, 10.0, 9.0)])
    assert row.duration == 0.0


def test_empty_history_is_an_empty_trace() -> None:
    assert trace_from_history([]) == []


def test_job_without_replicas_is_refused_by_id() -> None:
    with pytest.raises(InvalidInput, match="job 4: replicas"):
        trace_from_history([job(4, 0.0, 0.0, 1.0, replicas=0)])


def test_cluster_of_alike_nodes_is_exact() -> None:
    """N nodes of one shape become N simulated nodes of that shape."""
    nodes = [NodeCapacity(f"n{i}", 8000, 64 * GIB, 4, "A100") for i in range(3)]
    spec = cluster_from_nodes(nodes)
    assert spec == ClusterSpec(
        nodes=3, gpus_per_node=4, cpus_per_node=8, memory_per_node=64 * GIB, gpu_kind="A100"
    )
    assert [(n.name, n.allocatable.gpus) for n in spec.build()] == [("n0", 4), ("n1", 4), ("n2", 4)]


def test_cluster_of_mixed_nodes_replays_on_those_very_nodes() -> None:
    """Each node as it is; the common shape only shapes the trace's jobs."""
    nodes = [
        NodeCapacity("a", 8000, 64 * GIB, 4, "A100"),
        NodeCapacity("b", 8000, 64 * GIB, 4, "A100"),
        NodeCapacity("c", 2000, 8 * GIB, 0, None),
    ]
    spec = cluster_from_nodes(nodes)
    assert (spec.nodes, spec.gpus_per_node, spec.cpus_per_node) == (3, 4, 8)
    built = {
        n.name: (n.allocatable.cpu, n.allocatable.memory, n.allocatable.gpus) for n in spec.build()
    }
    assert built == {
        "a": (8000, 64 * GIB, 4),
        "b": (8000, 64 * GIB, 4),
        "c": (2000, 8 * GIB, 0),
    }


def test_cluster_without_nodes_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no nodes"):
        cluster_from_nodes([])


def test_replay_keeps_the_queues_quotas_and_weights() -> None:
    """A queue's quota binds in the replay as on the cluster: under drf, a tenant with a
    1-GPU quota and nobody to borrow from runs its two 1-GPU jobs one after the other."""
    nodes = [NodeCapacity("n", 4000, 8 * GIB, 2, "T4")]
    jobs = [job(n, 0.0, 0.0, 10.0, queue="team", gpus=1) for n in (1, 2)]
    quota = History(0.0, 10.0, jobs, nodes, [QueueShare("team", {"gpu": 1}, weight=2.0)])
    replay = replay_inputs(quota)
    assert replay.trace == trace_from_history(jobs)
    assert [(q.name, dict(q.nominal or {}), q.weight) for q in replay.cluster.queues] == [
        ("team", {"gpu": 1}, 2.0)
    ]
    result = simulate(replay.trace, replay.cluster, "drf")
    unlimited = simulate(replay.trace, ClusterSpec(1, 2, 4, 8 * GIB, "T4"), "drf")
    assert result.metrics.makespan > unlimited.metrics.makespan
