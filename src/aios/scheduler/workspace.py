"""The cycle's private view of a ClusterState and the placement mechanics on it.

Nodes are copied on first write, so a cycle costs what it touches, not the cluster's
size. Nodes are indexed in buckets by free GPUs per GPU kind, so finding a node with
room for ``g`` GPUs looks at the buckets ``g, g+1, …`` instead of every node.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    """Changes whenever ``usage`` does, so plugins can memoise what they derive from it."""
    queue_versions: dict[str, int] = field(init=False, default_factory=dict)
    """The ``usage_version`` at which each queue's own usage last changed."""
    holds: int = field(init=False, default=0)
    """How many times room was taken for a job whose victims are still stopping: room
    that no running job of this view holds."""
    _touched: dict[str, NodeState] = field(init=False, default_factory=dict)
    _cohort_usage: dict[str, Usage] = field(init=False, default_factory=dict)
    _changed: bool = field(init=False, default=False)
    """Set once this view differs from the state in any way (nodes, index order, usage)."""
    _failed: dict[str, tuple[Job, Status]] | None = field(init=False, default=None)
    _max_free: tuple[int, int] = field(init=False, default=(-1, 0))

    def __post_init__(self) -> None:
        # Each queue's usage is copied when this view first changes it.
        self.usage = dict(self.state.usage)
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
            self._changed = True
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
        if need and not descending and not self.index.multi_kind:
            # The usual case, walked without the general bookkeeping below.
            wanted = request.gpu_kind
            only = (
                self.index.gpu_kinds if wanted is None else (wanted,) if wanted in buckets else ()
            )
            if len(only) == 1:
                by_level = buckets[only[0]]
                touched = self._touched
                nodes = self.state.nodes
                for level in range(need, len(by_level)):
                    for name in by_level[level]:
                        node = touched.get(name)
                        yield nodes[name] if node is None else node
                return
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
        self._changed = True
        self.usage_version += 1
        self.queue_versions[queue] = self.usage_version

    @property
    def pristine(self) -> bool:
        """True while this view is the state's own: nothing bound, freed, taken or held
        in it, its index in the state's order, and no victims."""
        return not self._changed and not self.victims

    def _failures(self) -> dict[str, tuple[Job, Status]]:
        """Single jobs that found no place in the state as it is, under this policy."""
        if self._failed is not None:
            return self._failed
        state = self.state
        at = (state.alloc_version, state.node_version, state.queue_version)
        kept = state.memo.get("place-failures")
        if kept is not None and kept[0] == at:
            found = kept[1]
            assert isinstance(found, tuple)
            if found[0] is self.policy:
                failures: dict[str, tuple[Job, Status]] = found[1]
                self._failed = failures
                return failures
        self._failed = {}
        state.memo["place-failures"] = (at, (self.policy, self._failed))
        return self._failed

    def _add_usage(self, queue: str, request: Resources, sign: int) -> None:
        own = self.usage.get(queue)
        if own is not None and own is self.state.usage.get(queue):
            self.usage[queue] = dict(own)
        add_usage(self.usage, queue, request, sign)
        if self._cohort_usage:
            cohort = self.state.queues[queue].cohort if queue in self.state.queues else None
            if cohort is not None and cohort in self._cohort_usage:
                add_usage(self._cohort_usage, cohort, request, sign)
        self.usage_changed(queue)

    def hold(self, job: Job, victims: Sequence[RunningJob]) -> bool:
        """Keeps for ``job``, for the rest of this cycle, the free room and the quota it
        needs beside what its ``victims`` will leave; False when it would not fit even
        then. The victims' own resources and usage stay held too: they are still running
        until they stop, so nothing may be bound onto them (and nothing else may take the
        quota they give back)."""
        for victim in victims:
            self.unbind(victim)
        status, allocations = self.place(job)
        if status.ok:
            self.undo(allocations)
        for victim in victims:
            self.rebind(victim)
        if not status.ok:
            return False
        for allocation in _beyond(allocations, victims):
            self.take_exact(allocation)
        self._hold_usage(job, victims)
        self.holds += 1
        self.usage_version += 1
        return True

    def _hold_usage(self, job: Job, victims: Sequence[RunningJob]) -> None:
        """Counts quota as it will be once the ``victims`` have stopped and ``job`` has
        started: ``job``'s queue is charged with it, and each victim's queue gives back
        what the victim holds. Counting both the victims (still running) and ``job``
        would count the reclaimed quota twice in the cohort, and the next preemptor of
        the cycle would then stop more than it needs."""
        self._add_usage(job.queue, job.total, 1)
        for victim in victims:
            self._add_usage(victim.job.queue, victim.job.total, -1)

    def cohort_usage(self, cohort: str) -> Usage:
        """What the queues of ``cohort`` use together in this view."""
        used = self._cohort_usage.get(cohort)
        if used is None:
            if not self.queue_versions:  # no usage changed yet: the state's sums hold
                used = dict(self.state.cohort_usage.get(cohort, {}))
            else:
                used = {}
                for queue in self.state.queues.values():
                    if queue.cohort == cohort:
                        for resource, amount in self.usage.get(queue.name, {}).items():
                            used[resource] = used.get(resource, 0) + amount
            self._cohort_usage[cohort] = used
        return used

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
        self._add_usage(running.job.queue, running.job.total, -1)

    def rebind(self, running: RunningJob) -> None:
        """Undoes :meth:`unbind`."""
        for allocation in running.allocations:
            self.take_exact(allocation)
        self._add_usage(running.job.queue, running.job.total, 1)

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
        names no GPU kind is tried one kind at a time, so it never straddles two.

        A single job that finds no place before anything is taken leaves no trace, so
        while this view is the state's own that failure is kept in the state, with the
        policy, until a job starts or stops, a node or a queue changes."""
        failures = None
        if job.replicas == 1 and not exclude and not self._changed and not self.victims:
            failures = self._failures()
            known = failures.get(job.id)
            if known is not None and known[0] is job:
                return known[1], ()
        for pre in self.policy.pre_filters:
            status = pre.pre_filter(job, self)
            if not status.ok:
                if failures is not None:
                    failures[job.id] = (job, status)
                return status, ()
        if failures is not None:
            status, allocations = self._place_replicas(job, exclude)
            if status is NO_ROOM:
                failures[job.id] = (job, NO_ROOM)
            return status, allocations
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
        self._add_usage(job.queue, job.total, 1)
        running = RunningJob(job, allocations, self.now)
        self.bound[job.id] = running
        for plugin in self.policy.reserves:
            plugin.reserve(job, allocations, self)
        return running


def _beyond(allocations: Sequence[Allocation], victims: Sequence[RunningJob]) -> list[Allocation]:
    """The parts of ``allocations`` that the ``victims`` do not hold now. Cores and GPUs
    are the victims' by identity; memory and custom resources are amounts, and what the
    victims hold of them on a node is counted once across every allocation on that node
    (the replicas of a gang on one node share it, rather than each subtracting it all)."""
    cores: dict[str, set[int]] = {}
    gpus: dict[str, set[int]] = {}
    memory: dict[str, int] = {}
    custom: dict[str, dict[str, int]] = {}
    for victim in victims:
        for held in victim.allocations:
            cores.setdefault(held.node, set()).update(held.cores)
            gpus.setdefault(held.node, set()).update(held.gpus)
            memory[held.node] = memory.get(held.node, 0) + held.memory
            on_node = custom.setdefault(held.node, {})
            for name, amount in held.custom:
                on_node[name] = on_node.get(name, 0) + amount
    parts = []
    for allocation in allocations:
        node = allocation.node
        freed = min(allocation.memory, memory.get(node, 0))
        memory[node] = memory.get(node, 0) - freed
        left: list[tuple[str, int]] = []
        on_node = custom.get(node, {})
        for name, amount in allocation.custom:
            reused = min(amount, on_node.get(name, 0))
            if reused:
                on_node[name] -= reused
            if amount > reused:
                left.append((name, amount - reused))
        parts.append(
            Allocation(
                node,
                tuple(c for c in allocation.cores if c not in cores.get(node, ())),
                tuple(g for g in allocation.gpus if g not in gpus.get(node, ())),
                allocation.memory - freed,
                allocation.gpu_kind,
                tuple(left),
            )
        )
    return parts
