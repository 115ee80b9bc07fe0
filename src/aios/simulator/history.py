"""The cluster's own history as a trace: finished jobs and current nodes in, a trace out.

``aios simulate --from-history`` asks the control plane for :class:`History` (the jobs
that ended in a window, the nodes and the queues as they are now) and replays it under
other policies, so that an admin sees what a policy would have done to this cluster's
own workload before switching to it. This module is the pure half: it turns the
history into the :class:`~aios.simulator.traces.TraceJob` list and the
:class:`~aios.simulator.runner.ClusterSpec` that :func:`aios.simulator.simulate` takes;
the control plane gathers the history, the CLI fetches it and prints the comparison.

A job's run time is the real running time of its last attempt (start to end): a job
that was preempted or retried ran to its end in that attempt, so the attempt is what
the job needs. Its submit time is its first submission, so time spent waiting for
retries counts as waiting, as it did on the cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from aios.errors import InvalidInput
from aios.resources import Node
from aios.scheduler import Queue
from aios.simulator.runner import ClusterSpec
from aios.simulator.traces import TraceJob

__all__ = [
    "ENDED_STATES",
    "FinishedJob",
    "History",
    "HistoryReplay",
    "NodeCapacity",
    "QueueShare",
    "cluster_from_nodes",
    "replay_inputs",
    "trace_from_history",
]

ENDED_STATES = ("succeeded", "failed", "cancelled")
"""The ends of a job that ran: a job that never started (unschedulable, upstream failed,
cancelled while queued) held nothing and is not part of the workload."""


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """One job that ran and ended. Resources are per replica, as submitted: ``cpu`` in
    millicores, ``memory`` in bytes. ``started_at`` and ``finished_at`` bound its last
    attempt; times are POSIX seconds. ``name`` is the job's name (its command's first
    word when it was given none); ``restore`` and ``checkpoint_every`` its preemption
    cost as submitted, in seconds (None: not given)."""

    id: int
    queue: str
    state: str
    submitted_at: float
    started_at: float
    finished_at: float
    cpu: int
    memory: int
    gpus: int
    replicas: int = 1
    name: str = ""
    restore: float | None = None
    checkpoint_every: float | None = None

    @property
    def run_time(self) -> float:
        """Seconds its last attempt ran (never negative, even across a clock step)."""
        return max(self.finished_at - self.started_at, 0.0)


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """What jobs may take of one node now: ``cpu`` in millicores, ``memory`` in bytes."""

    name: str
    cpu: int
    memory: int
    gpus: int
    gpu_kind: str | None = None


@dataclass(frozen=True, slots=True)
class QueueShare:
    """A queue as it is now: its quota (resource → amount; None: unlimited) and weight."""

    name: str
    quota: dict[str, int] | None
    weight: float = 1.0
    cohort: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """The jobs submitted in ``[since, until]`` that ran and ended, in submit order, with
    the cluster's nodes and queues at ``until``."""

    since: float
    until: float
    jobs: list[FinishedJob] = field(default_factory=list)
    nodes: list[NodeCapacity] = field(default_factory=list)
    queues: list[QueueShare] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HistoryReplay:
    """What :func:`aios.simulator.simulate` takes to replay a history."""

    trace: list[TraceJob]
    cluster: ClusterSpec


def trace_from_history(jobs: Sequence[FinishedJob]) -> list[TraceJob]:
    """Returns one trace job per finished job, sorted by (submit time, id).

    A trace job's id is ``"job-<ID>"``, its submit time the seconds after the earliest
    submission, its duration the job's :attr:`~FinishedJob.run_time`, its tenant the
    job's queue, and its GPUs, cores and memory the job's whole request (per replica ×
    replicas) — the simulator splits them over nodes again; its name and preemption cost
    are the job's own. Raises InvalidInput naming
    the job for a request that is negative or a job with no replica.
    """
    ordered = sorted(jobs, key=lambda job: (job.submitted_at, job.id))
    if not ordered:
        return []
    origin = ordered[0].submitted_at
    trace: list[TraceJob] = []
    for job in ordered:
        if job.replicas < 1:
            raise InvalidInput(f"job {job.id}: replicas must be at least 1, got {job.replicas}")
        if job.cpu < 0 or job.memory < 0 or job.gpus < 0:
            raise InvalidInput(f"job {job.id}: cpu, memory and gpus must not be negative")
        trace.append(
            TraceJob(
                f"job-{job.id}",
                job.submitted_at - origin,
                job.run_time,
                job.gpus * job.replicas,
                job.cpu * job.replicas / 1000,
                job.memory * job.replicas,
                job.queue,
                job.name,
                job.restore,
                job.checkpoint_every,
            )
        )
    return trace


def cluster_from_nodes(
    nodes: Sequence[NodeCapacity], queues: Sequence[QueueShare] = ()
) -> ClusterSpec:
    """The simulated cluster for ``nodes`` and ``queues``: those very nodes (cores,
    memory, GPUs and their kind) and queues (quotas, weights, cohorts). Its per-node
    figures, which shape the trace's jobs, are the most common node's. Raises
    InvalidInput when there is no node."""
    if not nodes:
        raise InvalidInput("the cluster has no nodes to replay its history on")
    shapes = Counter(
        (max(node.cpu // 1000, 1), node.memory, node.gpus, node.gpu_kind or "") for node in nodes
    )
    (cores, memory, gpus, kind), _ = max(shapes.items(), key=lambda item: (item[1], item[0]))
    exact = tuple(
        Node.build(
            node.name,
            cpus=node.cpu // 1000,
            memory=node.memory,
            gpus=node.gpus,
            gpu_kind=node.gpu_kind or ClusterSpec.gpu_kind,
        )
        for node in nodes
    )
    return ClusterSpec(
        nodes=len(nodes),
        gpus_per_node=gpus,
        cpus_per_node=cores,
        memory_per_node=max(memory, 1),
        gpu_kind=kind or ClusterSpec.gpu_kind,
        exact=exact,
        queues=tuple(
            Queue(q.name, nominal=q.quota, weight=q.weight, cohort=q.cohort) for q in queues
        ),
    )


def replay_inputs(history: History) -> HistoryReplay:
    """Returns the trace and cluster that replay ``history``: its jobs, on the cluster's
    nodes and queues as they are now."""
    cluster = cluster_from_nodes(history.nodes, history.queues)
    return HistoryReplay(trace_from_history(history.jobs), cluster)
