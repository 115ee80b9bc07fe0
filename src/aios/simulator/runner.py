"""Replays a trace through the scheduler: the same :func:`aios.scheduler.cycle` the
control plane runs, driven by a simulated clock.

Each job of the trace arrives at its submit time and runs for its duration once bound;
a preempted job goes back to its queue and pays its :class:`PreemptionCost`: it keeps
the work up to its last checkpoint, and when it runs again it first spends its restore
time (the replay's defaults for jobs whose trace row says nothing). After the events
of one instant are applied, one cycle runs; when it preempts, another runs at the same
instant so the preemptor starts once its victims have stopped. A periodic tick lets
time-based policies (LAS demotion, starvation reservations) act while nothing else
happens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from aios.errors import InvalidInput
from aios.resources import Node, Resources, parse_memory
from aios.scheduler import (
    FREE,
    Bind,
    ClusterState,
    Job,
    JobState,
    Policy,
    Preempt,
    PreemptionCost,
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


def jobs_from_trace(
    trace: Sequence[TraceJob], spec: ClusterSpec, cost: PreemptionCost = FREE
) -> list[Job]:
    """Turns trace rows into scheduler jobs. A job with more GPUs than a node holds
    becomes a gang of whole-node replicas (16 GPUs on 8-GPU nodes: 2 × 8). Without CPU or
    memory in the trace, each GPU brings its node's share of cores and memory. The real
    duration is given as the estimate (an oracle, as SJF studies assume). A job's
    preemption cost is its row's, each figure the row lacks taken from ``cost``."""
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
        job_cost = cost
        if row.restore is not None or row.checkpoint_every is not None:
            job_cost = PreemptionCost(
                cost.restore if row.restore is None else row.restore,
                cost.checkpoint_every if row.checkpoint_every is None else row.checkpoint_every,
            )
        jobs.append(
            Job(
                row.id,
                request,
                replicas=replicas,
                queue=row.tenant,
                submit_time=row.submit,
                duration_estimate=row.duration,
                preemption_cost=job_cost,
                name=row.name,
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
    resumed_from: float
    """Progress (seconds of useful work) the run started from: a checkpoint, or 0."""
    restored: bool
    """Whether the run restarts a preempted job, and so first spends its restore time."""


def simulate(
    trace: Sequence[TraceJob],
    spec: ClusterSpec,
    policy: Policy | str,
    tick: float = 300.0,
    progress: Progress | None = None,
    cost: PreemptionCost = FREE,
    history: Sequence[TraceJob] = (),
) -> SimulationResult:
    """Replays ``trace`` on ``spec`` under ``policy`` and returns the metrics; ``cost``
    is the preemption cost of jobs whose trace row names none (see
    :func:`jobs_from_trace`). Pure computation: deterministic for the same inputs.

    A policy that learns (``policy.learner``) sees no duration: its jobs carry no
    estimate, it is told about each job when it finishes (its duration times its GPUs),
    and before the replay about each job of ``history`` (jobs that ended before it)."""
    import time

    began = time.perf_counter()
    policy = make_policy(policy) if isinstance(policy, str) else policy
    nodes = spec.build()
    jobs = jobs_from_trace(trace, spec, cost)
    durations = {row.id: row.duration for row in trace}
    learner = policy.learner
    if learner is not None:
        for past in jobs_from_trace(history, spec, cost):
            learner.observe(past, (past.duration_estimate or 0.0) * past.service_units)
        # Blind: the true durations stay with the simulator.
        jobs = [replace(job, duration_estimate=None) for job in jobs]
    generation = learner.generation if learner is not None else 0
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
    done: dict[str, float] = {}
    """Progress each job keeps (its last checkpoint), in seconds of useful work."""
    lost_work: dict[str, float] = {}
    restore_time: dict[str, float] = {}
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
        happened = False
        for kind, job_id, token in batch:
            happened = happened or kind != "finish"
            if kind == "arrive":
                state.submit(by_id[job_id])
            elif kind == "finish":
                run = runs.get(job_id)
                if run is None or run.token != token:
                    continue  # a finish from a run that was preempted
                happened = True
                del runs[job_id]
                ended_job = state.running[job_id].job
                if run.restored:
                    restore_time[job_id] = restore_time.get(job_id, 0.0) + _cost(ended_job).restore
                busy -= ended_job.total.gpus
                held[ended_job.queue] -= ended_job.total.gpus
                touched.add(ended_job.queue)
                state.finish(job_id, JobState.SUCCEEDED)
                finish[job_id] = now
                ended += 1
                if learner is not None:
                    learner.observe(ended_job, durations[job_id] * ended_job.service_units)
            elif kind == "tick":
                tick_due = None
        if not happened:
            # Only the finishes of runs that were preempted: no cycle, whose time would
            # tell the scheduler when those runs would have ended.
            continue
        if learner is not None and learner.generation != generation:
            generation = learner.generation
            state.reorder(policy.order_key)  # what was learned moves the waiting jobs
        for _ in range(100):
            result = cycle(state, now, policy)
            cycles += 1
            preempted = False
            for decision in result.decisions:
                if isinstance(decision, Bind):
                    job = decision.job
                    state.bind(job, decision.allocations, now)
                    tokens += 1
                    restored = job.id in preemptions
                    resumed_from = done.get(job.id, 0.0)
                    runs[job.id] = _Run(now, tokens, resumed_from, restored)
                    left = durations[job.id] - resumed_from
                    if restored:
                        left += _cost(job).restore
                    first_start.setdefault(job.id, now)
                    busy += job.total.gpus
                    held[job.queue] = held.get(job.queue, 0) + job.total.gpus
                    touched.add(job.queue)
                    events.schedule(now + left, ("finish", job.id, tokens))
                elif isinstance(decision, Preempt):
                    stopped = decision.victim.job
                    victim = stopped.id
                    run = runs.pop(victim)
                    kept = _charge(stopped, run, now, lost_work, restore_time)
                    done[victim] = kept
                    busy -= stopped.total.gpus
                    held[stopped.queue] -= stopped.total.gpus
                    touched.add(stopped.queue)
                    # What one run now lasts: the work after its checkpoint, and a restore.
                    rerun = durations[victim] - kept + _cost(stopped).restore
                    state.requeue(
                        victim,
                        now,
                        preemptor=decision.preemptor,
                        estimate=None if learner is not None else rerun,
                    )
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
            durations[job.id],
            job.total.gpus,
            first_start.get(job.id),
            finish.get(job.id),
            preemptions.get(job.id, 0),
            job.id in unschedulable,
            lost_work.get(job.id, 0.0),
            restore_time.get(job.id, 0.0),
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


def _cost(job: Job) -> PreemptionCost:
    return job.preemption_cost or FREE


def _charge(
    job: Job,
    run: _Run,
    now: float,
    lost_work: dict[str, float],
    restore_time: dict[str, float],
) -> float:
    """Charges ``job``, stopped at ``now`` during ``run``, its preemption: adds the work
    done since its last checkpoint to ``lost_work`` and the restore it spent to
    ``restore_time`` (seconds), and returns the progress it keeps."""
    cost = _cost(job)
    ran = max(now - run.start, 0.0)
    reached = cost.progress(run.resumed_from, ran, run.restored)
    kept = cost.kept(run.resumed_from, reached)
    if reached > kept:
        lost_work[job.id] = lost_work.get(job.id, 0.0) + (reached - kept)
    if run.restored and cost.restore:
        restore_time[job.id] = restore_time.get(job.id, 0.0) + min(ran, cost.restore)
    return kept
