"""The preemption cost model: work since the last checkpoint is lost, a restart first
restores, and the replay charges both."""

from __future__ import annotations

import pytest

from aios.errors import InvalidInput
from aios.resources import Node, Resources
from aios.scheduler import FREE, Bind, ClusterState, Job, PreemptionCost, cycle, make_policy
from aios.simulator import ClusterSpec, simulate
from aios.simulator.traces import TraceJob

ONE_GPU = ClusterSpec(nodes=1, gpus_per_node=1)


@pytest.mark.parametrize(
    ("every", "resumed_from", "reached", "kept"),
    [
        (1800.0, 0.0, 5000.0, 3600.0),  # the last checkpoint before 5000 s of work
        (1800.0, 0.0, 1799.0, 0.0),  # no checkpoint yet: everything is lost
        (1800.0, 3600.0, 3700.0, 3600.0),  # never behind where the run resumed
        (1800.0, 3600.0, 3600.0, 3600.0),
        (1800.0, 0.0, 3600.0, 3600.0),  # stopped exactly at a checkpoint
        (None, 0.0, 5000.0, 5000.0),  # checkpoints when stopped: nothing lost
        (0.0, 100.0, 5000.0, 5000.0),
    ],
)
def test_kept_is_the_last_checkpoint_reached(
    every: float | None, resumed_from: float, reached: float, kept: float
) -> None:
    """A stopped job keeps the last whole multiple of its interval it reached."""
    assert PreemptionCost(60.0, every).kept(resumed_from, reached) == kept


def test_a_restored_run_makes_no_progress_while_it_restores() -> None:
    """The first ``restore`` seconds of a restart add no progress; a first run's do."""
    cost = PreemptionCost(60.0, 1800.0)
    assert cost.progress(3600.0, 40.0, restored=True) == 3600.0
    assert cost.progress(3600.0, 100.0, restored=True) == 3640.0
    assert cost.progress(0.0, 100.0, restored=False) == 100.0
    assert cost.expected_loss == 60.0 + 900.0


@pytest.mark.parametrize(("restore", "every"), [(-1.0, None), (60.0, -5.0), (float("nan"), 1.0)])
def test_negative_costs_are_refused(restore: float, every: float | None) -> None:
    with pytest.raises(InvalidInput):
        PreemptionCost(restore, every)


def preempted_once() -> list[TraceJob]:
    """A 10,000 s job alone on one GPU; at 5,000 s a 100 s job arrives and, under las,
    preempts it (it has passed las's first threshold, 3,600 GPU-seconds)."""
    return [
        TraceJob("long", 0.0, 10_000.0, 1, None, None, "a"),
        TraceJob("short", 5_000.0, 100.0, 1, None, None, "a"),
    ]


def finish_times(trace: list[TraceJob], cost: PreemptionCost) -> dict[str, float | None]:
    result = simulate(trace, ONE_GPU, "las", cost=cost)
    return {o.job_id: o.finish for o in result.outcomes}


def test_free_preemption_resumes_where_it_stopped() -> None:
    """Without costs the long job loses nothing: it ends 100 s late, at 10,100 s."""
    assert finish_times(preempted_once(), FREE) == {"long": 10_100.0, "short": 5_100.0}


def test_preemption_loses_work_since_the_checkpoint_and_pays_the_restore() -> None:
    """Stopped at 5,000 s with checkpoints every 1,800 s, the long job keeps 3,600 s of
    work, loses 1,400 s; restarted at 5,100 s it restores for 60 s and runs the 6,400 s
    left: it ends at 11,560 s. The table charges 1,460 GPU-seconds and 60 s of restore."""
    result = simulate(preempted_once(), ONE_GPU, "las", cost=PreemptionCost(60.0, 1800.0))
    outcomes = {o.job_id: o for o in result.outcomes}
    long = outcomes["long"]
    assert long.finish == 11_560.0
    assert (long.preemptions, long.lost_work, long.restore_time) == (1, 1400.0, 60.0)
    assert result.metrics.lost_gpu_seconds == 1460.0
    assert result.metrics.restore_seconds == 60.0
    assert outcomes["short"].finish == 5_100.0


def test_lost_work_counts_per_gpu() -> None:
    """A 4-GPU job that loses 1,400 s of work and restores 60 s costs 4 × 1,460."""
    trace = [
        TraceJob("long", 0.0, 10_000.0, 4, None, None, "a"),
        TraceJob("short", 5_000.0, 100.0, 4, None, None, "a"),
    ]
    spec = ClusterSpec(nodes=1, gpus_per_node=4)
    result = simulate(trace, spec, "las", cost=PreemptionCost(60.0, 1800.0))
    # las's threshold is in GPU-seconds: 4 GPUs pass 3,600 at 900 s, long before 5,000.
    assert result.metrics.lost_gpu_seconds == 4 * 1460.0


def test_a_trace_row_keeps_its_own_cost() -> None:
    """A row that names its own restore and interval is charged those, not the
    replay's defaults: here a job that checkpoints when stopped and restores in 10 s."""
    long, short = preempted_once()
    own = TraceJob(long.id, 0.0, 10_000.0, 1, None, None, "a", restore=10.0, checkpoint_every=0.0)
    times = finish_times([own, short], PreemptionCost(60.0, 1800.0))
    assert times["long"] == 5_100.0 + 10.0 + 5_000.0


def test_the_requeued_job_expects_only_what_is_left() -> None:
    """After a preemption the job's estimate is its work after the checkpoint plus its
    restore, so reservations and shortest-first orders see what one more run takes."""
    state = ClusterState([Node.build("n", cpus=4, memory=2**30, gpus=1)])
    state.submit(Job("j", Resources(1000, 2**20, 1, None), duration_estimate=10_000.0))
    (bind,) = cycle(state, 0.0, make_policy("fifo")).decisions
    assert isinstance(bind, Bind)
    state.bind(bind.job, bind.allocations, 0.0)
    again = state.requeue("j", 5_000.0, estimate=6_460.0)
    assert again.duration_estimate == 6_460.0
    assert again.attained_service == 5_000.0
