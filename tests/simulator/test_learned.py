"""The learned policy in the simulator: it learns only from jobs that finished, never
from a duration it could not know yet, and it beats today's policies where history
tells something."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aios.scheduler import PreemptionCost
from aios.simulator import ClusterSpec, simulate
from aios.simulator.synthetic import SyntheticShape, synthetic_trace
from aios.simulator.traces import TraceJob

SPEC = ClusterSpec(nodes=16, gpus_per_node=8)
COST = PreemptionCost(60.0, 1800.0)


CASES = [
    (ClusterSpec(nodes=4, gpus_per_node=8), SyntheticShape(300, 3, 3, gpus=32, seed=7)),
    (ClusterSpec(nodes=16, gpus_per_node=8), SyntheticShape(300, 3, 3, gpus=128, seed=7)),
]


def before(
    trace: list[TraceJob], spec: ClusterSpec, policy: str, until: float
) -> list[tuple[str, float | None, float | None]]:
    """When each job first started and finished, for what happened before ``until``."""
    result = simulate(trace, spec, policy, cost=COST)
    return sorted(
        (o.job_id, o.start, o.finish if o.finish is not None and o.finish <= until else None)
        for o in result.outcomes
        if o.start is not None and o.start <= until
    )


def unfinished_stretched(
    trace: list[TraceJob], spec: ClusterSpec, policy: str
) -> tuple[list[TraceJob], float]:
    """The trace with every job that had not finished by the median finish time made
    three times longer (so still unfinished then), and that time."""
    result = simulate(trace, spec, policy, cost=COST)
    finishes = sorted(o.finish for o in result.outcomes if o.finish is not None)
    until = finishes[len(finishes) // 2]
    late = {o.job_id for o in result.outcomes if o.finish is None or o.finish > until}
    return [replace(j, duration=j.duration * 3) if j.id in late else j for j in trace], until


@pytest.mark.parametrize(("spec", "shape"), CASES)
def test_the_learner_never_sees_a_duration_before_the_job_ends(
    spec: ClusterSpec, shape: SyntheticShape
) -> None:
    """Stretching every job not yet finished at time T changes nothing the learned
    policy did before T: its estimates come only from jobs that had finished, and no
    cycle runs at the moment a preempted run would have ended."""
    trace = synthetic_trace(shape)
    stretched, until = unfinished_stretched(trace, spec, "learned")
    assert before(stretched, spec, "learned", until) == before(trace, spec, "learned", until)


@pytest.mark.parametrize(("spec", "shape"), CASES[1:])
def test_the_oracle_does_see_them(spec: ClusterSpec, shape: SyntheticShape) -> None:
    """The same change moves the clairvoyant bound before T: the test above can tell a
    policy that reads durations from one that does not."""
    trace = synthetic_trace(shape)
    stretched, until = unfinished_stretched(trace, spec, "oracle-srtf")
    assert before(stretched, spec, "oracle-srtf", until) != before(
        trace, spec, "oracle-srtf", until
    )


def test_history_from_an_earlier_period_is_used() -> None:
    """Seeded with the jobs of an earlier period, the learner orders by their classes
    from the first job on, and does better than without them."""
    trace = synthetic_trace(SyntheticShape(jobs=600, tenants=3, kinds=3, gpus=128, seed=3))
    first, second = trace[:300], trace[300:]
    offset = second[0].submit
    second = [replace(j, submit=j.submit - offset) for j in second]
    cold = simulate(second, SPEC, "learned", cost=COST).metrics
    warm = simulate(second, SPEC, "learned", cost=COST, history=first).metrics
    assert warm.completed == cold.completed == 300
    assert warm.mean_jct < cold.mean_jct


def test_learned_is_closer_to_the_bound_than_las_and_drf_on_a_synthetic_trace() -> None:
    """On a trace whose job kinds differ in length, learning them beats the policies
    that do not look at history, with preemption costs on."""
    trace = synthetic_trace(SyntheticShape(jobs=800, tenants=4, kinds=4, gpus=128, seed=1))
    jct = {
        p: simulate(trace, SPEC, p, cost=COST).metrics.mean_jct for p in ("learned", "las", "drf")
    }
    assert jct["learned"] < min(jct["las"], jct["drf"])


def test_synthetic_trace_shape() -> None:
    """Deterministic per seed, sorted by submit, with multi-node gangs and named kinds."""
    shape = SyntheticShape(jobs=2000, seed=5)
    trace = synthetic_trace(shape)
    assert trace == synthetic_trace(shape)
    assert [j.submit for j in trace] == sorted(j.submit for j in trace)
    assert sum(j.gpus >= 16 for j in trace) > 100
    assert max(j.gpus for j in trace) == 128
    assert {j.name.split("-")[0] for j in trace} == {j.tenant for j in trace}
    work = sum(j.duration * j.gpus for j in trace)
    span = trace[-1].submit
    assert 0.8 * shape.load < work / (span * shape.gpus) < 1.25 * shape.load
