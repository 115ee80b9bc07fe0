"""The cycle's private view of a ClusterState and the placement mechanics on it.

Nodes are copied on first write, so a cycle costs what it touches, not the cluster's
size. Nodes are indexed in buckets by free GPUs per GPU kind, so finding a node with
room for ``g`` GPUs looks at the buckets ``g, g+1, …`` instead of every node.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from aios.resources import Allocation, Resources
from aios.scheduler.framework import SUCCESS, Code, Policy, Status
from aios.scheduler.job import Job, RunningJob
from aios.scheduler.queue import Usage
from aios.scheduler.state import (
    NO_GPU,
    ClusterState,
    GpuIndex,
    NodeState,
    add_usage,
    alloc_giver,
    alloc_taker,
)

__all__ = ["NO_GPU", "Workspace"]


NO_ROOM = Status(Code.UNSCHEDULABLE, "no node has room for it now")


@dataclass(slots=True)
class Workspace:
    """What one cycle sees and changes: node free state (copy-on-write), queue usage,
    the jobs it bound and the victims it chose. The ClusterState stays untouched."""

    state: ClusterState
    policy: Policy
    now: float
    usage: dict[str, Usage] = field(init=False)
    bound: dict[str, RunningJob] = field(init=False, default_factory=dict)
    victims: set[str] = field(init=False, default_factory=set)
    index: GpuIndex = field(init=False)
    capacity: Resources = field(init=False)
    memo: dict[str, object] = field(init=False, default_factory=dict)
    """Per-cycle values plugins compute once (a ranking of victims, say)."""
    usage_version: int = field(init=False, default=0)
    queue_versions: dict[str, int] = field(init=False, default_factory=dict)
    """The ``usage_version`` at which each queue's own usage last changed."""
    """Changes whenever ``usage`` does, so plugins can memoise what they derive from it."""
    _touched: dict[str, NodeState] = field(init=False, default_factory=dict)
    _max_free: tuple[int, int] = field(init=False, default=(-1, 0))

    def __post_init__(self) -> None:
        self.usage = {queue: dict(used) for queue, used in self.state.usage.items()}
        self.capacity = self.state.capacity
        self.index = self.state.index.copy()
        self.victims = set(self.state.preempting)

    @property
    def free_gpus(self) -> int:
        """Free GPUs of every kind in this view."""
        return self.index.free_gpus

    # -- nodes ------------------------------------------------------------------------
    def node(self, name: str) -> NodeState:
        touched = self._touched.get(name)
        return touched if touched is not None else self.state.nodes[name]

    def _writable(self, name: str) -> NodeState:
        touched = self._touched.get(name)
        if touched is None:
            touched = self._touched[name] = self.state.nodes[name].copy()
        return touched

    def nodes_by_free_gpus(
        self, request: Resources, descending: bool = False
    ) -> Iterator[NodeState]:
        """Nodes that may have room for ``request``, fewest free first (or most free first
        with ``descending``): by free GPUs of a suitable kind, and for a request without
        GPUs first the nodes without GPUs by free cores, which keeps CPU work off GPU
        nodes. Only the bucket levels are a guarantee; the caller checks the rest."""
        need = request.gpus
        buckets = self.index.levels
        if need:
            if request.gpu_kind is not None:
                kinds = [request.gpu_kind] if request.gpu_kind in buckets else []
            else:
                kinds = list(self.index.gpu_kinds)
        else:
            kinds = list(self.index.gpu_kinds)
            cpu_nodes = buckets.get(NO_GPU)
            if cpu_nodes is not None:
                cores = -(-request.cpu // 1000)
                order = (
                    range(len(cpu_nodes) - 1, cores - 1, -1)
                    if descending
                    else range(cores, len(cpu_nodes))
                )
                for level in order:
                    for name in cpu_nodes[level]:
                        yield self.node(name)
        top = max((len(buckets[k]) for k in kinds), default=0)
        levels = range(top - 1, need - 1, -1) if descending else range(need, top)
        seen: set[str] | None = set() if self.index.multi_kind else None
        for level in levels:
            for kind in kinds:
                by_level = buckets[kind]
                if level >= len(by_level):
                    continue
                for name in by_level[level]:
                    if seen is not None:
                        if name in seen:
                            continue
                        seen.add(name)
                    yield self.node(name)

    def take(self, node: NodeState, request: Resources) -> Allocation:
        writable = self._writable(node.name)
        gpu_kind = writable.gpu_kind_for(request)
        return self.index.track(writable, gpu_kind, lambda n: n.take(request, gpu_kind))

    def give(self, allocation: Allocation) -> None:
        self.index.track(
            self._writable(allocation.node), allocation.gpu_kind, alloc_giver(allocation)
        )

    def take_exact(self, allocation: Allocation) -> None:
        self.index.track(
            self._writable(allocation.node), allocation.gpu_kind, alloc_taker(allocation)
        )

    def usage_changed(self, queue: str) -> None:
        self.usage_version += 1
        self.queue_versions[queue] = self.usage_version

    @property
    def pristine(self) -> bool:
        """True while this cycle has changed nothing: the view equals the state."""
        return not self._touched and not self.bound and not self.victims

    def max_free_gpus(self) -> int:
        """The most free GPUs of one kind on any one node."""
        if self._max_free[0] == self.index.version:
            return self._max_free[1]
        best = 0
        levels = self.index.levels
        for kind in self.index.gpu_kinds:
            by_level = levels[kind]
            for level in range(len(by_level) - 1, best, -1):
                if by_level[level]:
                    best = level
                    break
        self._max_free = (self.index.version, best)
        return best

    # -- running jobs -----------------------------------------------------------------
    def running_jobs(self) -> Iterator[RunningJob]:
        """Jobs running at the start of the cycle, then those this cycle bound."""
        yield from self.state.running.values()
        yield from self.bound.values()

    def unbind(self, running: RunningJob) -> None:
        """Frees a running job's resources in this view (to try a preemption)."""
        for allocation in running.allocations:
            self.give(allocation)
        add_usage(self.usage, running.job.queue, running.job.total, -1)
        self.usage_changed(running.job.queue)

    def rebind(self, running: RunningJob) -> None:
        """Undoes :meth:`unbind`."""
        for allocation in running.allocations:
            self.take_exact(allocation)
        add_usage(self.usage, running.job.queue, running.job.total, 1)
        self.usage_changed(running.job.queue)

    # -- placement --------------------------------------------------------------------
    def choose_node(self, job: Job, exclude: frozenset[str]) -> NodeState | None:
        """The best node for one replica of ``job`` by the policy's filters and scores."""
        policy = self.policy
        feasible: list[NodeState] = []
        request = job.request
        for node in policy.node_order.candidates(job, self):
            if exclude and node.name in exclude:
                continue
            if not node.fits(request):
                continue
            if any(not f.filter(job, node, self).ok for f in policy.filters):
                continue
            if not policy.scores:
                return node
            feasible.append(node)
            if len(feasible) >= policy.score_sample:
                break
        if not feasible:
            return None
        return max(feasible, key=lambda n: sum(s.score(job, n, self) for s in policy.scores))

    def place(
        self, job: Job, exclude: frozenset[str] = frozenset()
    ) -> tuple[Status, tuple[Allocation, ...]]:
        """Runs pre-filters, finds a node for every replica and asks the permit plugins.
        On success the resources are taken in this view (not yet reserved: call
        :meth:`commit` or :meth:`undo`); on failure nothing is left taken. A gang that
        names no GPU kind is tried one kind at a time, so it never straddles two."""
        for pre in self.policy.pre_filters:
            status = pre.pre_filter(job, self)
            if not status.ok:
                return status, ()
        request = job.request
        if job.replicas > 1 and request.gpus and request.gpu_kind is None:
            kinds = self.index.gpu_kinds
            if len(kinds) > 1:
                for kind in kinds:
                    pinned = replace(job, request=replace(request, gpu_kind=kind))
                    status, allocations = self._place_replicas(pinned, exclude)
                    if status.ok:
                        return status, allocations
                return NO_ROOM, ()
        return self._place_replicas(job, exclude)

    def _place_replicas(
        self, job: Job, exclude: frozenset[str]
    ) -> tuple[Status, tuple[Allocation, ...]]:
        if job.replicas == 1:
            node = self.choose_node(job, exclude)
            if node is None:
                return NO_ROOM, ()
            allocations: tuple[Allocation, ...] = (self.take(node, job.request),)
        else:
            taken: list[Allocation] = []
            for _ in range(job.replicas):
                node = self.choose_node(job, exclude)
                if node is None:
                    self.undo(taken)
                    return NO_ROOM, ()
                taken.append(self.take(node, job.request))
            allocations = tuple(taken)
        for permit in self.policy.permits:
            status = permit.permit(job, allocations, self)
            if not status.ok:
                self.undo(allocations)
                return status, ()
        return SUCCESS, allocations

    def undo(self, allocations: tuple[Allocation, ...] | list[Allocation]) -> None:
        for allocation in allocations:
            self.give(allocation)

    def fits(self, job: Job) -> bool:
        """Whether ``job`` could be placed in this view now; changes nothing."""
        status, allocations = self.place(job)
        self.undo(allocations)
        return status.ok

    def commit(self, job: Job, allocations: tuple[Allocation, ...]) -> RunningJob:
        """Makes a placement from :meth:`place` final for this cycle."""
        add_usage(self.usage, job.queue, job.total, 1)
        self.usage_changed(job.queue)
        running = RunningJob(job, allocations, self.now)
        self.bound[job.id] = running
        for plugin in self.policy.reserves:
            plugin.reserve(job, allocations, self)
        return running
