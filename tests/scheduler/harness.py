"""Builders and a small event loop for the scheduler tests.

The event loop is the caller a scheduling cycle expects (the simulator and the control
plane play this part): it submits jobs when they arrive, runs a cycle, applies every
decision to the ClusterState (bind, requeue a preempted victim, finish an unschedulable
or upstream-failed job), and finishes a job once it has run for its duration. A
preempted job keeps the work it did, as in the simulator.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aios.resources import Node, Resources
from aios.scheduler import (
    Bind,
    ClusterState,
    CycleResult,
    Decision,
    Job,
    JobState,
    Policy,
    Preempt,
    Queue,
    RunningJob,
    Unschedulable,
    cycle,
    make_policy,
)

GI = 1024**3

BASE_POLICIES = ("fifo", "fifo+backfill", "priority", "priority+backfill", "drf", "las", "sjf")
"""Every policy AIOS ships, with binpack placement (the default)."""

ALL_POLICIES = BASE_POLICIES + tuple(f"{name}+spread" for name in BASE_POLICIES)
"""Every shipped policy with binpack and with spread placement."""


def gpu_node(
    name: str,
    gpus: int = 8,
    kind: str = "A100",
    cpus: int = 32,
    memory: str | int = "256G",
    labels: Mapping[str, str] | None = None,
) -> Node:
    """A GPU node with ``gpus`` devices of one ``kind``."""
    return Node.build(name, cpus=cpus, memory=memory, gpus=gpus, gpu_kind=kind, labels=labels)


def cpu_node(name: str, cpus: int = 8, memory: str | int = "64G") -> Node:
    """A node without GPUs."""
    return Node.build(name, cpus=cpus, memory=memory)


def job(
    job_id: str,
    *,
    cpus: float = 1,
    memory: str | int = "1G",
    gpus: int = 0,
    kind: str | None = None,
    replicas: int = 1,
    priority: int = 0,
    queue: str = "default",
    submit: float = 0.0,
    estimate: float | None = None,
    preemptible: bool = True,
    dependencies: tuple[str, ...] = (),
    attained: float = 0.0,
    node_selector: tuple[tuple[str, str], ...] = (),
    name: str = "",
) -> Job:
    """A job asking, per replica, for ``cpus`` cores, ``memory`` and ``gpus`` of ``kind``."""
    return Job(
        job_id,
        Resources.of(cpu=cpus, memory=memory, gpus=gpus, gpu_kind=kind),
        replicas=replicas,
        priority=priority,
        queue=queue,
        submit_time=submit,
        duration_estimate=estimate,
        preemptible=preemptible,
        dependencies=dependencies,
        attained_service=attained,
        node_selector=node_selector,
        name=name,
    )


def new_state(
    policy: Policy,
    nodes: Iterable[Node],
    queues: Iterable[Queue] = (),
    pending: Iterable[Job] = (),
) -> ClusterState:
    """A ClusterState ordered for ``policy`` with ``pending`` submitted."""
    state = ClusterState(nodes, queues, order_key=policy.order_key)
    for pending_job in pending:
        state.submit(pending_job)
    return state


def occupy(state: ClusterState, running: Job, node: str, now: float = 0.0) -> RunningJob:
    """Starts ``running`` with every replica on ``node``, as an earlier cycle would have."""
    scratch = state.nodes[node].copy()
    allocations = tuple(scratch.take(running.request) for _ in range(running.replicas))
    return state.bind(running, allocations, now)


def apply(state: ClusterState, result: CycleResult, now: float) -> None:
    """Applies a cycle's decisions to ``state`` as the simulator and control plane do."""
    for decision in result.decisions:
        if isinstance(decision, Bind):
            state.bind(decision.job, decision.allocations, now)
        elif isinstance(decision, Preempt):
            state.requeue(decision.victim.job.id, now, preemptor=decision.preemptor)
        elif isinstance(decision, Unschedulable):
            state.finish(decision.job_id, JobState.UNSCHEDULABLE)
        else:
            state.finish(decision.job_id, JobState.UPSTREAM_FAILED)


def step(state: ClusterState, policy: Policy, now: float) -> CycleResult:
    """Runs one cycle at ``now`` and applies its decisions."""
    result = cycle(state, now, policy)
    apply(state, result, now)
    return result


def bound(result: CycleResult) -> list[str]:
    """The ids of the jobs a cycle bound, in decision order."""
    return [b.job.id for b in result.binds]


def nodes_of(result: CycleResult, job_id: str) -> list[str]:
    """The node of each replica of ``job_id`` as the cycle bound it."""
    for b in result.binds:
        if b.job.id == job_id:
            return [a.node for a in b.allocations]
    raise AssertionError(f"{job_id} was not bound; decisions: {result.decisions}")


Observer = Callable[[ClusterState, CycleResult, float], None]
"""Called after each cycle with the state the cycle saw, before its decisions apply."""

Settled = Callable[[ClusterState], None]
"""Called after a cycle's decisions have been applied."""


@dataclass
class Replay:
    """What happened in one run of the event loop."""

    log: list[tuple[float, list[Decision], dict[str, str]]] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    unschedulable: set[str] = field(default_factory=set)
    upstream_failed: set[str] = field(default_factory=set)
    preemptions: int = 0
    """Instants at which cycles were still preempting after ``cycles_per_instant``."""
    clock: float = 0.0


def replay(
    policy_spec: str,
    nodes: Sequence[Node],
    queues: Sequence[Queue],
    jobs: Sequence[Job],
    durations: Mapping[str, float],
    *,
    tick: float = 600.0,
    horizon: float = math.inf,
    observe: Observer | None = None,
    settled: Settled | None = None,
    cycles_per_instant: int = 64,
) -> Replay:
    """Replays ``jobs`` (arriving at their submit time, running for ``durations``) under a
    fresh policy built from ``policy_spec``, until nothing is left or past ``horizon``.

    After the events of one instant, cycles run until one preempts nothing (victims stop
    at once, so the preemptor can start at the same instant). While jobs are pending a
    tick every ``tick`` seconds gives time-based policies a cycle. Cycles that still
    preempt after ``cycles_per_instant`` fail the replay (a preemption livelock).
    """
    policy = make_policy(policy_spec)
    state = new_state(policy, nodes, queues)
    by_id = {j.id: j for j in jobs}
    remaining = {j.id: durations[j.id] for j in jobs}
    events: list[tuple[float, int, int, str, str, int]] = []
    seq = 0

    def schedule(at: float, priority: int, kind: str, job_id: str = "", token: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, priority, seq, kind, job_id, token))

    for j in jobs:
        schedule(j.submit_time, 1, "arrive", j.id)
    runs: dict[str, tuple[float, int]] = {}
    out = Replay()
    tokens = 0
    tick_due: float | None = None
    while events and events[0][0] <= horizon:
        now = events[0][0]
        out.clock = now
        while events and events[0][0] == now:
            _, _, _, kind, job_id, token = heapq.heappop(events)
            if kind == "arrive":
                state.submit(by_id[job_id])
            elif kind == "finish":
                if job_id in runs and runs[job_id][1] == token:
                    del runs[job_id]
                    state.finish(job_id, JobState.SUCCEEDED)
                    out.ended[job_id] = now
            else:
                tick_due = None
        for _ in range(cycles_per_instant):
            result = cycle(state, now, policy)
            if observe is not None:
                observe(state, result, now)
            for decision in result.decisions:
                if isinstance(decision, Bind):
                    state.bind(decision.job, decision.allocations, now)
                    tokens += 1
                    runs[decision.job.id] = (now, tokens)
                    out.started.setdefault(decision.job.id, now)
                    schedule(now + remaining[decision.job.id], 0, "finish", decision.job.id, tokens)
                elif isinstance(decision, Preempt):
                    victim = decision.victim.job.id
                    began, _ = runs.pop(victim)
                    remaining[victim] = max(remaining[victim] - (now - began), 0.0)
                    state.requeue(victim, now, preemptor=decision.preemptor)
                    out.preemptions += 1
                elif isinstance(decision, Unschedulable):
                    state.finish(decision.job_id, JobState.UNSCHEDULABLE)
                    out.unschedulable.add(decision.job_id)
                else:
                    state.finish(decision.job_id, JobState.UPSTREAM_FAILED)
                    out.upstream_failed.add(decision.job_id)
            if settled is not None:
                settled(state)
            out.log.append((now, list(result.decisions), dict(result.reasons)))
            if not result.preemptions:
                break
        else:
            raise AssertionError(
                f"{policy_spec}: still preempting after {cycles_per_instant} cycles at t={now}"
            )
        if len(state.pending) and tick_due is None:
            tick_due = now + tick
            schedule(tick_due, 2, "tick")
    return out
