"""Invariants of the scheduling cycle over random clusters and workloads.

Each example is a random cluster (1–12 nodes, 0–8 GPUs of one or two kinds, 2–32 cores),
random queues (quotas, cohorts, borrowing limits, weights) and a random workload
(requests, gangs of 1–3 replicas, priorities, dependencies, arrivals over time). The
harness's event loop replays it under a policy and checks the invariants after every
cycle. ``AIOS_PROPERTY_EXAMPLES=500 pytest tests/scheduler/test_scheduler_properties.py``
searches harder than the default run.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aios.resources import Node, Resources
from aios.scheduler import (
    Bind,
    ClusterState,
    CycleResult,
    Job,
    JobState,
    Queue,
    check_quota,
)
from tests.scheduler.harness import ALL_POLICIES, GI, Observer, Settled, replay

KINDS = ("A100", "H100")

Scenario = tuple[list[Node], list[Queue], list[Job], dict[str, float]]
"""Nodes, queues, jobs and each job's real duration."""

PROPERTY = settings(
    deadline=None,
    max_examples=int(os.environ.get("AIOS_PROPERTY_EXAMPLES", "20")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def clusters(draw: st.DrawFn) -> list[Node]:
    """1–12 homogeneous nodes with 0–8 GPUs of one of the cluster's one or two kinds."""
    kinds = KINDS[: draw(st.integers(1, 2))]
    return [
        Node.build(
            f"n{i:02d}",
            cpus=draw(st.integers(2, 32)),
            memory=draw(st.integers(8, 256)) * GI,
            gpus=draw(st.integers(0, 8)),
            gpu_kind=draw(st.sampled_from(kinds)),
        )
        for i in range(draw(st.integers(1, 12)))
    ]


@st.composite
def queue_sets(draw: st.DrawFn, nodes: list[Node]) -> list[Queue]:
    """1–3 queues. Either none has a quota, or each has a nominal gpu and cpu quota,
    some share a cohort and some have a borrowing limit."""
    count = draw(st.integers(1, 3))
    if not draw(st.booleans()):
        return [Queue(f"q{i}", weight=draw(st.sampled_from([1.0, 2.0]))) for i in range(count)]
    gpus = sum(n.allocatable.gpus for n in nodes)
    cpus = sum(n.allocatable.cpu for n in nodes)
    queues = []
    for i in range(count):
        limit = draw(st.none() | st.integers(0, 4))
        queues.append(
            Queue(
                f"q{i}",
                nominal={
                    "gpu": draw(st.integers(0, max(gpus, 1))),
                    "cpu": 1000 * draw(st.integers(1, max(cpus // 1000, 1))),
                },
                weight=draw(st.sampled_from([1.0, 2.0])),
                cohort=draw(st.sampled_from([None, "c", "c"])),
                borrowing_limit={} if limit is None else {"gpu": limit, "cpu": 1000 * limit},
            )
        )
    return queues


@st.composite
def workloads(
    draw: st.DrawFn, nodes: list[Node], queues: list[Queue]
) -> tuple[list[Job], dict[str, float]]:
    """1–20 jobs arriving over time, with their real durations (the estimate is the real
    duration, a bad guess or missing)."""
    kinds = sorted({k for n in nodes for k in n.gpu_kinds}) or ["A100"]
    jobs: list[Job] = []
    durations: dict[str, float] = {}
    clock = 0.0
    for i in range(draw(st.integers(1, 20))):
        clock += draw(st.sampled_from([0.0, 0.0, 0.0, 30.0, 300.0, 1200.0]))
        duration = float(draw(st.integers(1, 7200)))
        gpus = draw(st.sampled_from([0, 0, 1, 1, 2, 4, 8]))
        parents = (
            st.sampled_from([j.id for j in jobs]).map(lambda p: (p,)) if jobs else st.nothing()
        )
        job = Job(
            f"j{i:02d}",
            Resources.of(
                cpu=draw(st.integers(1, 8)),
                memory=draw(st.integers(1, 32)) * GI,
                gpus=gpus,
                gpu_kind=draw(st.sampled_from([None, None, *kinds])),
            ),
            replicas=draw(st.integers(1, 3)),
            priority=draw(st.integers(0, 3)),
            queue=draw(st.sampled_from([q.name for q in queues])),
            submit_time=clock,
            duration_estimate=draw(st.sampled_from([duration, duration, 2 * duration, None])),
            preemptible=draw(st.booleans()),
            dependencies=draw(st.just(()) | st.just(()) | st.just(()) | parents),
        )
        jobs.append(job)
        durations[job.id] = duration
    return jobs, durations


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> Scenario:
    nodes = draw(clusters())
    queues = draw(queue_sets(nodes))
    jobs, durations = draw(workloads(nodes, queues))
    return nodes, queues, jobs, durations


# -- invariants -----------------------------------------------------------------------


def check_no_node_over_allocated(state: ClusterState, extra: list[Bind]) -> None:
    """Running jobs plus ``extra`` binds hold no core or GPU twice, only the node's own
    allocatable cores and GPUs, and no more memory than the node offers."""
    cores: dict[str, list[int]] = defaultdict(list)
    gpus: dict[str, list[tuple[str | None, int]]] = defaultdict(list)
    memory: Counter[str] = Counter()
    allocations = [a for r in state.running.values() for a in r.allocations]
    allocations += [a for b in extra for a in b.allocations]
    for a in allocations:
        cores[a.node] += a.cores
        gpus[a.node] += [(a.gpu_kind, g) for g in a.gpus]
        memory[a.node] += a.memory
    for name, node_state in state.nodes.items():
        node = node_state.node
        held = cores[name]
        assert len(held) == len(set(held)), f"{name}: a core is held twice: {sorted(held)}"
        assert set(held) <= set(node.cores), f"{name}: holds cores it does not have"
        devices = {(d.model, d.index) for d in node.gpus}
        held_gpus = gpus[name]
        assert len(held_gpus) == len(set(held_gpus)), f"{name}: a GPU is held twice"
        assert set(held_gpus) <= devices, f"{name}: holds GPUs it does not have"
        assert memory[name] <= node.allocatable.memory, f"{name}: memory over-allocated"


def check_state_matches_running_jobs(state: ClusterState) -> None:
    """Every node's free cores, GPUs and memory are exactly what running jobs do not hold."""
    cores: dict[str, set[int]] = defaultdict(set)
    gpus: dict[str, set[tuple[str | None, int]]] = defaultdict(set)
    memory: Counter[str] = Counter()
    for running in state.running.values():
        for a in running.allocations:
            cores[a.node] |= set(a.cores)
            gpus[a.node] |= {(a.gpu_kind, g) for g in a.gpus}
            memory[a.node] += a.memory
    for name, node_state in state.nodes.items():
        node = node_state.node
        free_cores = set(node_state.free_cores)
        assert free_cores | cores[name] == set(node.cores) and not free_cores & cores[name]
        free_gpus = {(k, g) for k, ids in node_state.free_gpus.items() for g in ids}
        devices = {(d.model, d.index) for d in node.gpus}
        assert free_gpus | gpus[name] == devices and not free_gpus & gpus[name]
        assert node_state.free_memory + memory[name] == node.allocatable.memory


def check_state_indexes(state: ClusterState) -> None:
    """The state's indexes of its running jobs agree with them: the ending order holds
    every running job once, sorted by expected end; the jobs by queue are the running jobs;
    each cohort's usage is the sum of its queues' usage."""
    ending = state.ending
    assert sorted(r.job.id for r in ending) == sorted(state.running)
    assert all(a.end_order <= b.end_order for a, b in pairwise(ending))
    by_queue = {job_id for jobs in state.running_by_queue.values() for job_id in jobs}
    assert by_queue == set(state.running)
    for queue, jobs in state.running_by_queue.items():
        assert all(state.running[job_id].job.queue == queue for job_id in jobs)
    cohorts: dict[str, Counter[str]] = defaultdict(Counter)
    for name, used in state.usage.items():
        cohort = state.queues[name].cohort
        if cohort is not None:
            cohorts[cohort].update(used)
    for cohort, used in state.cohort_usage.items():
        assert {k: v for k, v in used.items() if v} == {
            k: v for k, v in cohorts[cohort].items() if v
        }


def check_binds_are_whole_gangs(state: ClusterState, result: CycleResult) -> None:
    """Every Bind places a pending job with exactly one allocation per replica, each
    holding what one replica asked for, on GPUs of one kind (the requested one, if any)."""
    seen: set[str] = set()
    for bind in result.binds:
        j = bind.job
        assert j.id not in seen, f"{j.id} bound twice in one cycle"
        seen.add(j.id)
        assert j.id in state.pending, f"{j.id} bound but not pending"
        assert len(bind.allocations) == j.replicas, f"{j.id}: gang partly placed"
        kinds = {a.gpu_kind for a in bind.allocations if a.gpus}
        assert len(kinds) <= 1, f"{j.id}: replicas on GPU kinds {kinds}"
        for a in bind.allocations:
            assert len(a.cores) == -(-j.request.cpu // 1000)
            assert len(a.gpus) == j.request.gpus
            assert a.memory == j.request.memory
            if j.request.gpus and j.request.gpu_kind is not None:
                assert a.gpu_kind == j.request.gpu_kind
        for parent in j.dependencies:
            assert state.finished.get(parent) is JobState.SUCCEEDED, f"{j.id} before {parent}"


def check_preemptions(state: ClusterState, result: CycleResult) -> None:
    """Victims are running, preemptible, distinct, and their preemptors not bound yet."""
    victims = [p.victim.job.id for p in result.preemptions]
    assert len(victims) == len(set(victims))
    bound_now = {b.job.id for b in result.binds}
    for p in result.preemptions:
        assert p.victim.job.id in state.running
        assert p.victim.job.preemptible, f"non-preemptible {p.victim.job.id} preempted"
        assert p.preemptor not in bound_now, f"{p.preemptor} bound while preempting"


def check_quotas(state: ClusterState) -> None:
    """Under drf no queue uses more than nominal plus its borrowing limit (nominal alone
    without a cohort) and no cohort more than the sum of its members' nominal quotas."""
    usage: dict[str, Counter[str]] = defaultdict(Counter)
    for running in state.running.values():
        usage[running.job.queue].update(running.job.total.as_dict())
    cohorts: dict[str, Counter[str]] = defaultdict(Counter)
    quotas: dict[str, Counter[str]] = defaultdict(Counter)
    for queue in state.queues.values():
        if queue.nominal is None:
            continue
        used = usage[queue.name]
        for resource, nominal in queue.nominal.items():
            if queue.cohort is None:
                allowed: float = nominal
            else:
                allowed = nominal + queue.borrowing_limit.get(resource, math.inf)
                cohorts[queue.cohort][resource] += used[resource]
                quotas[queue.cohort][resource] += nominal
            assert used[resource] <= allowed, f"{queue.name} uses {used[resource]} {resource}"
    for cohort, used in cohorts.items():
        for resource, amount in used.items():
            assert amount <= quotas[cohort][resource], f"cohort {cohort} over its {resource}"


def _observer(spec: str) -> tuple[Observer, Settled]:
    def observe(state: ClusterState, result: CycleResult, now: float) -> None:
        check_binds_are_whole_gangs(state, result)
        check_preemptions(state, result)
        check_no_node_over_allocated(state, result.binds)

    def settled(state: ClusterState) -> None:
        check_state_matches_running_jobs(state)
        check_state_indexes(state)
        check_no_node_over_allocated(state, [])
        if spec.startswith("drf"):
            check_quotas(state)

    return observe, settled


@pytest.mark.parametrize("spec", ALL_POLICIES)
@PROPERTY
@given(scenario=scenarios())
def test_no_over_allocation_no_partial_gang_no_quota_breach(spec: str, scenario: Scenario) -> None:
    """After every cycle of a random replay: no node is over-allocated, every Bind is a
    whole gang, victims are preemptible, and under drf every quota holds."""
    nodes, queues, jobs, durations = scenario
    observe, settled = _observer(spec)
    out = replay(
        spec,
        nodes,
        queues,
        jobs,
        durations,
        observe=observe,
        settled=settled,
        horizon=50_000.0,
    )
    assert not set(out.started) & (out.unschedulable | out.upstream_failed)


@pytest.mark.parametrize("spec", ALL_POLICIES)
@PROPERTY
@given(scenario=scenarios())
def test_same_inputs_give_the_same_decisions(spec: str, scenario: Scenario) -> None:
    """Two replays of the same inputs, each from a fresh state and policy, decide the same
    things at the same times for the same reasons."""
    nodes, queues, jobs, durations = scenario
    first = replay(spec, nodes, queues, jobs, durations, horizon=5e4)
    second = replay(spec, nodes, queues, jobs, durations, horizon=5e4)
    assert first.log == second.log


def _forget_what_cycles_kept(state: ClusterState) -> None:
    state.memo.clear()
    state.derived.clear()
    state.derived_from_queues.clear()


@pytest.mark.parametrize("spec", ALL_POLICIES)
@PROPERTY
@given(scenario=scenarios())
def test_what_cycles_keep_never_changes_a_decision(spec: str, scenario: Scenario) -> None:
    """A replay whose state forgets, before every cycle, all that earlier cycles kept in
    it (reservations, quota verdicts, shares, the oldest jobs...) decides the same things
    at the same times for the same reasons as one that remembers."""
    nodes, queues, jobs, durations = scenario
    kept = replay(spec, nodes, queues, jobs, durations, horizon=5e4)
    fresh = replay(
        spec, nodes, queues, jobs, durations, horizon=5e4, settled=_forget_what_cycles_kept
    )
    assert kept.log == fresh.log


def _fits_empty(job: Job, nodes: list[Node], queues: dict[str, Queue]) -> bool:
    """Whether every replica fits the empty cluster on GPUs of one kind, within the
    queue's quota ceiling."""
    queue = queues[job.queue]
    members = tuple(q for q in queues.values() if queue.cohort and q.cohort == queue.cohort)
    if not check_quota(queue, job.total, {}, members).ok:
        return False
    r = job.request
    kinds: list[str | None] = [None]
    if r.gpus and r.gpu_kind is not None:
        kinds = [r.gpu_kind]
    elif r.gpus:
        kinds = [*sorted({k for n in nodes for k in n.gpu_kinds})]
    for kind in kinds:
        slots = 0
        for node in nodes:
            limits = [len(node.cores) // -(-r.cpu // 1000), node.allocatable.memory // r.memory]
            if r.gpus:
                limits.append(sum(1 for d in node.gpus if d.model == kind) // r.gpus)
            slots += min(limits)
        if slots >= job.replicas:
            return True
    return False


@st.composite
def fitting_scenarios(
    draw: st.DrawFn,
) -> Scenario:
    """Scenarios whose every job fits the empty cluster and its queue's quota."""
    nodes, queues, jobs, durations = draw(scenarios())
    by_name = {q.name: q for q in queues}
    kept: list[Job] = []
    for job in jobs:
        if not _fits_empty(job, nodes, by_name):
            continue
        kept_ids = {k.id for k in kept}
        deps = tuple(d for d in job.dependencies if d in kept_ids)
        kept.append(replace(job, dependencies=deps))
    return nodes, queues, kept, {j.id: durations[j.id] for j in kept}


@pytest.mark.parametrize("spec", ALL_POLICIES)
@PROPERTY
@given(scenario=fitting_scenarios())
def test_every_job_that_fits_eventually_starts(spec: str, scenario: Scenario) -> None:
    """When every job fits the empty cluster, all of them start and finish within a bound
    on simulated time: nothing waits forever while others keep arriving."""
    nodes, queues, jobs, durations = scenario
    last_arrival = max((j.submit_time for j in jobs), default=0.0)
    horizon = last_arrival + 2 * sum(durations.values()) + 3600.0
    out = replay(
        spec,
        nodes,
        queues,
        jobs,
        durations,
        horizon=horizon,
    )
    assert out.unschedulable == set()
    assert out.upstream_failed == set()
    never = sorted({j.id for j in jobs} - set(out.started))
    assert never == [], f"never started by t={horizon}: {never}"
    assert set(out.ended) == {j.id for j in jobs}


_SEEDED_REPLAY = """
import random
from tests.scheduler.harness import ALL_POLICIES, gpu_node, cpu_node, job, replay
from aios.scheduler import Queue

rng = random.Random(7)
nodes = [gpu_node(f"g{i}", rng.choice([2, 4, 8]), rng.choice(["A100", "H100"])) for i in range(6)]
nodes += [cpu_node(f"c{i}") for i in range(2)]
queues = [
    Queue("a", nominal={"gpu": 8}, cohort="c", borrowing_limit={"gpu": 8}),
    Queue("b", nominal={"gpu": 16}, cohort="c"),
    Queue("z", weight=2.0),
]
jobs = [
    job(
        f"j{i:02d}",
        cpus=rng.randint(1, 8),
        gpus=rng.choice([0, 1, 2, 4]),
        kind=rng.choice([None, "A100", "H100"]),
        replicas=rng.randint(1, 3),
        priority=rng.randint(0, 3),
        queue=rng.choice("abz"),
        submit=60.0 * i,
        estimate=float(rng.randint(60, 7200)),
        preemptible=rng.random() < 0.7,
    )
    for i in range(40)
]
durations = {j.id: j.duration_estimate or 1.0 for j in jobs}
for spec in ALL_POLICIES:
    out = replay(spec, nodes, queues, jobs, durations)
    print(spec, out.log)
"""


def test_decisions_do_not_depend_on_the_hash_seed() -> None:
    """Two processes with different string-hash seeds replay the same inputs to the same
    decisions, under every policy (nothing depends on set or hash order)."""
    here = Path(__file__).parent
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(here)}
        done = subprocess.run(
            [sys.executable, "-c", _SEEDED_REPLAY],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        outputs.append(done.stdout)
    assert outputs[0].count("\n") == len(ALL_POLICIES)
    assert outputs[0] == outputs[1]
