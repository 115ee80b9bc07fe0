"""Where a replica goes: node order (binpack, spread), filters, gang permit, and the
check that a job can fit the cluster at all."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aios.resources import Allocation, Node, Resources
from aios.scheduler.framework import SUCCESS, Code, Status
from aios.scheduler.job import Job

if TYPE_CHECKING:
    from aios.scheduler.state import NodeState
    from aios.scheduler.workspace import Workspace

__all__ = ["Binpack", "FitsCluster", "NodeSelector", "SameGpuKind", "Spread", "slots_on"]

_KEPT_JOBS = 4096
"""FitsCluster remembers the verdict of at most this many jobs by id."""


@dataclass(frozen=True)
class Binpack:
    """Fills the fullest node that still fits (fewest free GPUs first), so whole nodes
    stay free for large gangs: the fragmentation-fighting default for GPU work."""

    name: str = "binpack"

    def candidates(self, job: Job, ws: Workspace) -> Iterator[NodeState]:
        return ws.nodes_by_free_gpus(job.request)


@dataclass(frozen=True)
class Spread:
    """Puts work where the most is free (kube-scheduler's LeastAllocated): nodes with the
    most free GPUs first, and among a sample of those, the most free cores and memory."""

    name: str = "spread"

    def candidates(self, job: Job, ws: Workspace) -> Iterator[NodeState]:
        return ws.nodes_by_free_gpus(job.request, descending=True)

    def score(self, job: Job, node: NodeState, ws: Workspace) -> float:
        alloc = node.node.allocatable
        parts = [len(node.free_cores) / max(len(node.node.cores), 1)]
        if alloc.memory:
            parts.append(node.free_memory / alloc.memory)
        if alloc.gpus:
            parts.append(node.free_gpu_count() / alloc.gpus)
        return sum(parts) / len(parts)


@dataclass(frozen=True)
class NodeSelector:
    """Keeps replicas on nodes whose labels carry every ``key=value`` the job selects."""

    name: str = "node-selector"

    def filter(self, job: Job, node: NodeState, ws: Workspace) -> Status:
        labels = node.node.labels
        for key, value in job.node_selector:
            if labels.get(key) != value:
                return Status(Code.UNSCHEDULABLE, f"node lacks label {key}={value}")
        return SUCCESS


@dataclass(frozen=True)
class SameGpuKind:
    """A gang that did not name a GPU kind still gets one kind for every replica: mixed
    models would run a data-parallel job at the pace of the slowest."""

    name: str = "same-gpu-kind"

    def permit(self, job: Job, allocations: tuple[Allocation, ...], ws: Workspace) -> Status:
        if len(allocations) < 2:
            return SUCCESS
        kinds = {a.gpu_kind for a in allocations if a.gpus}
        if len(kinds) > 1:
            return Status(Code.UNSCHEDULABLE, f"gang would mix GPU kinds {sorted(map(str, kinds))}")
        return SUCCESS


def slots_on(node: Node, request: Resources, gpu_kind: str | None = None) -> int:
    """How many replicas of ``request`` an empty ``node`` holds, counting only GPUs of
    ``gpu_kind`` (or of the request's kind, or of the node's largest kind)."""
    limits: list[int] = []
    cores = -(-request.cpu // 1000)
    if cores:
        limits.append(len(node.cores) // cores)
    if request.memory:
        limits.append(node.allocatable.memory // request.memory)
    if request.gpus:
        kind = gpu_kind or request.gpu_kind
        kinds = [kind] if kind else sorted(node.gpu_kinds)
        counts = [sum(1 for d in node.gpus if d.model == k) for k in kinds]
        limits.append(max(counts, default=0) // request.gpus)
    for name, amount in request.custom:
        limits.append(node.allocatable.get(name) // amount)
    return min(limits) if limits else 1_000_000


@dataclass(frozen=True)
class FitsCluster:
    """Refuses, as unresolvable, a job that would not fit even on the empty cluster
    (more GPUs than any node offers, a GPU kind nobody has, a gang larger than the
    cluster or than any one GPU kind of it). The verdict per shape is kept with the
    cluster state until its nodes change."""

    name: str = "fits-cluster"

    def pre_filter(self, job: Job, ws: Workspace) -> Status:
        # By job id first (a waiting job is asked about cycle after cycle, and a string
        # keeps its hash), then by shape.
        derived = ws.state.derived
        by_job = derived.setdefault("fits-cluster:jobs", {})
        known = by_job.get(job.id)
        if (
            isinstance(known, tuple)
            and known[0] is job.request
            and known[1] == job.replicas
            and known[2] == job.node_selector
        ):
            verdict: Status = known[3]
            return verdict
        cache = derived.setdefault(self.name, {})
        key = (job.request, job.replicas, job.node_selector)
        found = cache.get(key)
        if found is None:
            found = cache[key] = self._judge(job, ws)
        assert isinstance(found, Status)
        if len(by_job) >= _KEPT_JOBS:
            by_job.clear()
        by_job[job.id] = (job.request, job.replicas, job.node_selector, found)
        return found

    @staticmethod
    def _judge(job: Job, ws: Workspace) -> Status:
        selector = dict(job.node_selector)
        request = job.request
        # A gang's replicas share one GPU kind, so count room per kind.
        kinds: list[str | None] = [None]
        if request.gpus and request.gpu_kind is None:
            kinds = list(ws.state.index.gpu_kinds) or [None]
        for kind in kinds:
            slots = 0
            for state in ws.state.nodes.values():
                node = state.node
                if any(node.labels.get(k) != v for k, v in selector.items()):
                    continue
                slots += slots_on(node, request, kind)
                if slots >= job.replicas:
                    return SUCCESS
        what = f"{job.replicas} × {request}" if job.replicas > 1 else str(request)
        return Status(
            Code.UNRESOLVABLE, f"larger than the cluster: no room for {what} even when empty"
        )
