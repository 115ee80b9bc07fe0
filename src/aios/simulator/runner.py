"""Replays a trace through the scheduler: the same :func:`aios.scheduler.cycle` the
control plane runs, driven by a simulated clock.

Each job of the trace arrives at its submit time and runs for its duration once bound;
a preempted job keeps the work it did (it resumes from a checkpoint) and goes back to
its queue. After the events of one instant are applied, one cycle runs; when it
preempts, another runs at the same instant so the preemptor starts once its victims
have stopped. A periodic tick lets time-based policies (LAS demotion, starvation
reservations) act while nothing else happens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aios.errors import InvalidInput
from aios.resources import Node, Resources, parse_memory
from aios.scheduler import (
    Bind,
    ClusterState,
    Job,
    JobState,
    Policy,
    Preempt,
    Queue,
    Unschedulable,
    UpstreamFailed,
    cycle,
    make_policy,
)
from aios.simulator.engine import EventQueue
from aios.simulator.metrics import JobOutcome, Metrics, summarize
from aios.simulator.traces import TraceJob

__all__ = ["ClusterSpec", "SimulationResult", "jobs_from_trace", "simulate"]

Progress = Callable[[int, int], None]
"""Called with (jobs ended, jobs in the trace) as the replay advances."""


@dataclass(frozen=True)
class ClusterSpec:
    """A simulated cluster: ``nodes`` alike, or the ``exact`` nodes of a real cluster
    (a replay of its own history), then with its ``queues`` (quotas, weights, cohorts)
    instead of an even split of the GPUs. The per-node figures shape the trace's jobs
    (a job larger than a node becomes a gang of whole nodes)."""

    nodes: int
    gpus_per_node: int
    cpus_per_node: int = 64
    memory_per_node: int = parse_memory("512G")
    gpu_kind: str = "V100"
    exact: tuple[Node, ...] = field(default=(), compare=False)
    queues: tuple[Queue, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise InvalidInput(f"--nodes must be at least 1, got {self.nodes}")
        if self.gpus_per_node < 0 or self.cpus_per_node < 1 or self.memory_per_node < 1:
            raise InvalidInput("gpus, cpus and memory per node must be positive")

    def build(self) -> list[Node]:
        if self.exact:
            return list(self.exact)
        return [
            Node.build(
                f"node-{i:04d}",
                cpus=self.cpus_per_node,
                memory=self.memory_per_node,
                gpus=self.gpus_per_node,
                gpu_kind=self.gpu_kind,
            )
            for i in range(self.nodes)
        ]


@dataclass
class SimulationResult:
    metrics: Metrics
    outcomes: list[JobOutcome]
    busy_samples: list[tuple[float, int]]
    gpu_capacity: int
    cycles: int
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    tenant_samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    """Per tenant, GPUs held over time (a step function like ``busy_samples``)."""


def jobs_from_trace(trace: Sequence[TraceJob], spec: ClusterSpec) -> list[Job]:
    """Turns trace rows into scheduler jobs. A job with more GPUs than a node holds
    becomes a gang of whole-node replicas (16 GPUs on 8-GPU nodes: 2 × 8). Without CPU or
    memory in the trace, each GPU brings its node's share of cores and memory. The real
    duration is given as the estimate (an oracle, as SJF studies assume)."""
    per_node = max(spec.gpus_per_node, 1)
    cpus_per_gpu = spec.cpus_per_node // per_node
    memory_per_gpu = spec.memory_per_node // per_node
    jobs: list[Job] = []
    for row in trace:
        replicas = max(math.ceil(row.gpus / per_node), 1) if spec.gpus_per_node else 1
        gpus = row.gpus // replicas if replicas > 1 else row.gpus
        if gpus * replicas != row.gpus:
            replicas, gpus = row.gpus, 1
        if row.cpus is not None:
            cpus = math.ceil(row.cpus / replicas)
        else:
            cpus = max(gpus * cpus_per_gpu, 1)
        memory = row.memory // replicas if row.memory is not None else gpus * memory_per_gpu
        request = Resources(1000 * cpus, memory, gpus, None)
        jobs.append(
            Job(
                row.id,
                request,
                replicas=replicas,
                queue=row.tenant,
                submit_time=row.submit,
                duration_estimate=row.duration,
            )
        )
    return jobs


def tenant_queues(tenants: Sequence[str], gpu_capacity: int) -> list[Queue]:
    """One queue per tenant in one cohort, the GPUs split evenly as nominal quota (the
    remainder to the first tenants) and no borrowing limit: quotas bind only under a
    policy with the quota plugin (``drf``)."""
    names = sorted(set(tenants))
    share, extra = divmod(gpu_capacity, max(len(names), 1))
    return [
        Queue(name, nominal={"gpu": share + (1 if i < extra else 0)}, cohort="cluster")
        for i, name in enumerate(names)
    ]


@dataclass
class _Run:
    start: float
    token: int


def simulate(
    trace: Sequence[TraceJob],
    spec: ClusterSpec,
    policy: Policy | str,
    tick: float = 300.0,
    progress: Progress | None = None,
) -> SimulationResult:
    """Replays ``trace`` on ``spec`` under ``policy`` and returns the metrics. Pure
    computation: deterministic for the same inputs."""
    import time

    began = time.perf_counter()
    policy = make_policy(policy) if isinstance(policy, str) else policy
    nodes = spec.build()
    jobs = jobs_from_trace(trace, spec)
    by_id = {job.id: job for job in jobs}
    state = ClusterState(nodes, order_key=policy.order_key)
    gpu_capacity = sum(node.allocatable.gpus for node in nodes)
    tenants = [j.queue for j in jobs]
    queues = list(spec.queues) or tenant_queues(tenants, gpu_capacity)
    named = {queue.name for queue in queues}
    queues += [Queue(name) for name in sorted(set(tenants) - named)]  # no quota: unlimited
    for queue in queues:
        state.set_queue(queue)

    events: EventQueue[tuple[str, str, int]] = EventQueue()
    for job in jobs:
        events.schedule(job.submit_time, ("arrive", job.id, 0), priority=1)
    remaining = {job.id: job.duration_estimate or 0.0 for job in jobs}
    runs: dict[str, _Run] = {}
    first_start: dict[str, float] = {}
    finish: dict[str, float] = {}
    preemptions: dict[str, int] = {}
    unschedulable: set[str] = set()
    busy = 0
    samples: list[tuple[float, int]] = [(0.0, 0)]
    held: dict[str, int] = {}
    tenant_samples: dict[str, list[tuple[float, int]]] = {}
    touched: set[str] = set()
    cycles = 0
    tokens = 0
    ended = 0
    tick_due: float | None = None
    total = len(jobs)

    while len(events):
        batch = events.pop_batch()
        now = events.now
        for kind, job_id, token in batch:
            if kind == "arrive":
                state.submit(by_id[job_id])
            elif kind == "finish":
                run = runs.get(job_id)
                if run is None or run.token != token:
                    continue  # a finish from a run that was preempted
                del runs[job_id]
                ended_job = state.running[job_id].job
                busy -= ended_job.total.gpus
                held[ended_job.queue] -= ended_job.total.gpus
                touched.add(ended_job.queue)
                state.finish(job_id, JobState.SUCCEEDED)
                finish[job_id] = now
                ended += 1
            elif kind == "tick":
                tick_due = None
        for _ in range(100):
            result = cycle(state, now, policy)
            cycles += 1
            preempted = False
            for decision in result.decisions:
                if isinstance(decision, Bind):
                    job = decision.job
                    state.bind(job, decision.allocations, now)
                    tokens += 1
                    runs[job.id] = _Run(now, tokens)
                    first_start.setdefault(job.id, now)
                    busy += job.total.gpus
                    held[job.queue] = held.get(job.queue, 0) + job.total.gpus
                    touched.add(job.queue)
                    events.schedule(now + remaining[job.id], ("finish", job.id, tokens))
                elif isinstance(decision, Preempt):
                    victim = decision.victim.job.id
                    run = runs.pop(victim)
                    remaining[victim] = max(remaining[victim] - (now - run.start), 0.0)
                    busy -= decision.victim.job.total.gpus
                    held[decision.victim.job.queue] -= decision.victim.job.total.gpus
                    touched.add(decision.victim.job.queue)
                    state.requeue(victim, now, preemptor=decision.preemptor)
                    preemptions[victim] = preemptions.get(victim, 0) + 1
                    preempted = True
                elif isinstance(decision, Unschedulable | UpstreamFailed):
                    state.finish(decision.job_id, JobState.UNSCHEDULABLE)
                    unschedulable.add(decision.job_id)
                    ended += 1
            if not preempted:
                break
        if samples[-1][1] != busy:
            samples.append((now, busy))
        for tenant in touched:
            series = tenant_samples.setdefault(tenant, [(0.0, 0)])
            if series[-1][1] != held[tenant]:
                series.append((now, held[tenant]))
        touched.clear()
        if len(state.pending) and tick_due is None and tick > 0:
            tick_due = now + tick
            events.schedule(tick_due, ("tick", "", 0), priority=2)
        if progress is not None:
            progress(ended, total)

    outcomes = [
        JobOutcome(
            job.id,
            job.queue,
            job.submit_time,
            job.duration_estimate or 0.0,
            job.total.gpus,
            first_start.get(job.id),
            finish.get(job.id),
            preemptions.get(job.id, 0),
            job.id in unschedulable,
        )
        for job in jobs
    ]
    metrics = summarize(policy.name, outcomes, samples, gpu_capacity, tenant_samples)
    return SimulationResult(
        metrics,
        outcomes,
        samples,
        gpu_capacity,
        cycles,
        time.perf_counter() - began,
        tenant_samples=tenant_samples,
    )
