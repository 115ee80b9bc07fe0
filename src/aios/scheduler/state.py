"""The scheduler's model of the cluster: free resources per node, running jobs, queue
usage, and the pending index. The caller (simulator or control plane) changes it as
things happen; a scheduling cycle only reads it."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from aios.errors import InvalidInput
from aios.resources import Allocation, Node, Resources
from aios.scheduler.job import Job, JobState, RunningJob
from aios.scheduler.pending import OrderKey, PendingJobs, fifo_key
from aios.scheduler.queue import Queue, Usage

__all__ = ["ClusterState", "NodeState"]

T = TypeVar("T")


class NodeState:
    """The free resources of one node, with exact core ids and GPU indices.

    Mutable on purpose: the cycle works on copies (:meth:`copy`) and never on the
    ClusterState's own instances.
    """

    __slots__ = ("free_cores", "free_custom", "free_gpus", "free_memory", "gpu_totals", "node")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.gpu_totals: dict[str, int] = {}
        for device in node.gpus:
            self.gpu_totals[device.model] = self.gpu_totals.get(device.model, 0) + 1
        self.free_cores: list[int] = list(node.cores)
        self.free_memory: int = node.allocatable.memory
        self.free_gpus: dict[str, list[int]] = {}
        for device in node.gpus:
            self.free_gpus.setdefault(device.model, []).append(device.index)
        self.free_custom: dict[str, int] = dict(node.allocatable.custom)

    def copy(self) -> NodeState:
        clone = NodeState.__new__(NodeState)
        clone.node = self.node
        clone.gpu_totals = self.gpu_totals
        clone.free_cores = self.free_cores.copy()
        clone.free_memory = self.free_memory
        clone.free_gpus = {kind: ids.copy() for kind, ids in self.free_gpus.items()}
        clone.free_custom = self.free_custom.copy()
        return clone

    @property
    def name(self) -> str:
        return self.node.name

    def free_gpu_count(self, kind: str | None = None) -> int:
        if kind is None:
            return sum(len(ids) for ids in self.free_gpus.values())
        return len(self.free_gpus.get(kind, ()))

    def gpu_kind_for(self, request: Resources) -> str | None:
        """The GPU kind this node would give ``request`` (the one with the fewest free
        GPUs that still suffice, to keep larger blocks whole), or None if none fits. A
        request without GPUs gets the empty string."""
        if not request.gpus:
            return ""
        if request.gpu_kind is not None:
            free = self.free_gpus.get(request.gpu_kind)
            return request.gpu_kind if free is not None and len(free) >= request.gpus else None
        best: str | None = None
        for kind, ids in self.free_gpus.items():
            if len(ids) >= request.gpus and (best is None or len(ids) < len(self.free_gpus[best])):
                best = kind
        return best

    def fits(self, request: Resources) -> bool:
        """True when the node's free resources cover ``request`` (cores are whole)."""
        if -(-request.cpu // 1000) > len(self.free_cores) or request.memory > self.free_memory:
            return False
        for name, amount in request.custom:
            if self.free_custom.get(name, 0) < amount:
                return False
        return self.gpu_kind_for(request) is not None

    def take(self, request: Resources, kind: str | None = None) -> Allocation:
        """Takes ``request`` from the free resources (lowest core ids and GPU indices
        first) and returns the allocation. The caller has checked :meth:`fits`; ``kind``
        is :meth:`gpu_kind_for` when the caller already knows it."""
        n_cores = -(-request.cpu // 1000)
        cores = tuple(self.free_cores[:n_cores])
        del self.free_cores[:n_cores]
        self.free_memory -= request.memory
        if kind is None:
            kind = self.gpu_kind_for(request)
        gpus: tuple[int, ...] = ()
        if request.gpus and kind:
            free = self.free_gpus[kind]
            gpus = tuple(free[: request.gpus])
            del free[: request.gpus]
        for name, amount in request.custom:
            self.free_custom[name] -= amount
        return Allocation(self.name, cores, gpus, request.memory, kind or None, request.custom)

    def take_exact(self, allocation: Allocation) -> None:
        """Takes exactly the cores and GPUs of ``allocation`` again (after :meth:`give`)."""
        if allocation.cores:
            held = set(allocation.cores)
            self.free_cores = [core for core in self.free_cores if core not in held]
        self.free_memory -= allocation.memory
        if allocation.gpus and allocation.gpu_kind:
            held = set(allocation.gpus)
            free = self.free_gpus[allocation.gpu_kind]
            free[:] = [index for index in free if index not in held]
        for name, amount in allocation.custom:
            self.free_custom[name] -= amount

    def give(self, allocation: Allocation) -> None:
        """Returns the resources of ``allocation`` to the free pool."""
        if len(allocation.cores) == 1:
            insort(self.free_cores, allocation.cores[0])
        elif allocation.cores:
            self.free_cores.extend(allocation.cores)
            self.free_cores.sort()
        self.free_memory += allocation.memory
        if allocation.gpus and allocation.gpu_kind:
            free = self.free_gpus.setdefault(allocation.gpu_kind, [])
            free.extend(allocation.gpus)
            free.sort()
        for name, amount in allocation.custom:
            self.free_custom[name] = self.free_custom.get(name, 0) + amount

    def allocated(self) -> Resources:
        """What jobs hold on this node now."""
        alloc = self.node.allocatable
        used_custom = tuple((k, v - self.free_custom.get(k, 0)) for k, v in alloc.custom)
        return Resources(
            alloc.cpu - 1000 * len(self.free_cores),
            alloc.memory - self.free_memory,
            alloc.gpus - self.free_gpu_count(),
            alloc.gpu_kind,
            tuple((k, v) for k, v in used_custom if v),
        )


NO_GPU = ""
"""The index kind of nodes without GPUs; they are bucketed by free cores instead."""


def index_kind(node: NodeState, gpu_kind: str | None) -> str | None:
    """Under which kind an allocation of ``gpu_kind`` moves ``node`` in the index: its
    GPU kind, NO_GPU for a node without GPUs, None when nothing indexed changes."""
    if gpu_kind:
        return gpu_kind
    return None if node.gpu_totals else NO_GPU


def index_level(node: NodeState, kind: str) -> int:
    return len(node.free_cores) if kind == NO_GPU else len(node.free_gpus[kind])


class GpuIndex:
    """Node names bucketed by what they have free: ``levels[kind][n]`` holds the nodes
    with exactly ``n`` free GPUs of ``kind``; nodes without GPUs sit in
    ``levels[NO_GPU][n]`` by free cores. Buckets are insertion-ordered, so traversal is
    deterministic, and finding the fullest node with room is a walk up the levels.
    """

    __slots__ = ("free_gpus", "gpu_kinds", "levels", "multi_kind", "version")

    def __init__(self) -> None:
        self.levels: dict[str, list[dict[str, None]]] = {}
        self.multi_kind = False
        self.free_gpus = 0
        self.gpu_kinds: tuple[str, ...] = ()
        self.version = 0
        """Changes whenever a node moves between buckets."""

    def copy(self) -> GpuIndex:
        clone = GpuIndex.__new__(GpuIndex)
        clone.levels = {kind: [b.copy() for b in levels] for kind, levels in self.levels.items()}
        clone.multi_kind = self.multi_kind
        clone.free_gpus = self.free_gpus
        clone.gpu_kinds = self.gpu_kinds
        clone.version = self.version
        return clone

    def _kinds(self, node: NodeState) -> list[tuple[str, int]]:
        if not node.gpu_totals:
            return [(NO_GPU, len(node.node.cores))]
        return list(node.gpu_totals.items())

    def add(self, node: NodeState) -> None:
        if len(node.gpu_totals) > 1:
            self.multi_kind = True
        for kind, total in self._kinds(node):
            levels = self.levels.setdefault(kind, [])
            while len(levels) <= total:
                levels.append({})
            levels[index_level(node, kind)][node.name] = None
            self.version += 1
            if kind != NO_GPU:
                self.free_gpus += index_level(node, kind)
        self.gpu_kinds = tuple(sorted(k for k in self.levels if k != NO_GPU))

    def remove(self, node: NodeState) -> None:
        for kind, _ in self._kinds(node):
            level = index_level(node, kind)
            del self.levels[kind][level][node.name]
            self.version += 1
            if kind != NO_GPU:
                self.free_gpus -= level

    def track(self, node: NodeState, gpu_kind: str | None, change: Callable[[NodeState], T]) -> T:
        """Applies ``change`` (which touches GPUs of ``gpu_kind``, or cores) to ``node``
        and moves the node to the bucket it belongs in afterwards."""
        kind = index_kind(node, gpu_kind)
        before = index_level(node, kind) if kind is not None else 0
        result = change(node)
        if kind is not None:
            self.move(node.name, kind, before, index_level(node, kind))
        return result

    def move(self, name: str, kind: str, before: int, after: int) -> None:
        if after != before:
            self.version += 1
            levels = self.levels[kind]
            del levels[before][name]
            levels[after][name] = None
            if kind != NO_GPU:
                self.free_gpus += after - before


def _end_order(running: RunningJob) -> tuple[float, float]:
    return running.end_order


def alloc_taker(allocation: Allocation) -> Callable[[NodeState], None]:
    return lambda node: node.take_exact(allocation)


def alloc_giver(allocation: Allocation) -> Callable[[NodeState], None]:
    return lambda node: node.give(allocation)


def add_usage(usage: dict[str, Usage], queue: str, request: Resources, sign: int) -> None:
    """Adds (``sign`` = 1) or removes (-1) ``request`` from ``queue``'s usage."""
    own = usage.get(queue)
    if own is None:
        own = usage[queue] = {}
    if request.cpu:
        own["cpu"] = own.get("cpu", 0) + sign * request.cpu
    if request.memory:
        own["memory"] = own.get("memory", 0) + sign * request.memory
    if request.gpus:
        own["gpu"] = own.get("gpu", 0) + sign * request.gpus
    for resource, amount in request.custom:
        own[resource] = own.get(resource, 0) + sign * amount


class ClusterState:
    """Everything the scheduler knows: nodes, queues, pending and running jobs, usage.

    The simulator and the control plane own one each and tell it what happened
    (:meth:`submit`, :meth:`bind`, :meth:`release`, :meth:`finish`);
    :func:`aios.scheduler.cycle` reads it and never changes it.
    """

    def __init__(
        self,
        nodes: Iterable[Node] = (),
        queues: Iterable[Queue] = (),
        order_key: OrderKey = fifo_key,
    ) -> None:
        self.nodes: dict[str, NodeState] = {}
        self.queues: dict[str, Queue] = {"default": Queue("default")}
        self._cohorts: dict[str, tuple[Queue, ...]] = {}
        self.derived_from_queues: dict[str, dict[object, object]] = {}
        """What plugins derive from the queues alone; emptied whenever a queue changes."""
        self.running: dict[str, RunningJob] = {}
        """By job id, in the order they were bound (a job bound again moves to the end):
        the learned policy reads what started since it last looked from the end."""
        self.ending: list[RunningJob] = []
        """The running jobs in the order they should end (:attr:`RunningJob.end_order`),
        those started earlier first among equals."""
        self.running_by_queue: dict[str, dict[str, RunningJob]] = {}
        """The running jobs of each queue, in the order they started."""
        self.queue_alloc_version: dict[str, int] = {}
        """The ``alloc_version`` at which each queue's running jobs last changed."""
        self.usage: dict[str, Usage] = {}
        self.cohort_usage: dict[str, Usage] = {}
        """What the queues of each cohort use together."""
        self.pending = PendingJobs(order_key)
        self.finished: dict[str, JobState] = {}
        self.nominated: dict[str, float] = {}
        """Pending jobs that preempted others, and when: later cycles serve them first."""
        self.preempting: dict[str, str] = {}
        """Victims told to stop but still running → the job they make room for."""
        self.node_version = 0
        """Changes whenever a node is added or removed."""
        self.queue_version = 0
        """Changes whenever a queue is created or replaced."""
        self.alloc_version = 0
        """Changes whenever a job starts or stops holding resources."""
        self.memo: dict[str, tuple[object, object]] = {}
        """Values a cycle derived from this state, keyed by the versions they depend on;
        they save recomputation across cycles and never change an outcome."""
        self.index = GpuIndex()
        self.derived: dict[str, dict[object, object]] = {}
        """What plugins derive from the nodes alone; emptied whenever nodes change."""
        self._capacity: Resources | None = None
        for node in nodes:
            self.add_node(node)
        for queue in queues:
            self.set_queue(queue)

    # -- configuration -------------------------------------------------------------
    def add_node(self, node: Node) -> None:
        if node.name in self.nodes:
            raise InvalidInput(f"node {node.name} already exists")
        state = self.nodes[node.name] = NodeState(node)
        self.index.add(state)
        self.node_version += 1
        self.derived.clear()
        self._capacity = None

    def remove_node(self, name: str) -> NodeState:
        """Forgets node ``name``; jobs running there are the caller's to requeue."""
        state = self.nodes.pop(name)
        self.index.remove(state)
        self.node_version += 1
        self.derived.clear()
        self._capacity = None
        return state

    def set_queue(self, queue: Queue) -> None:
        """Creates or replaces a queue; its usage carries over."""
        self.queues[queue.name] = queue
        self.queue_version += 1
        self._cohorts.clear()
        self.derived_from_queues.clear()
        self.cohort_usage = {}
        for name, used in self.usage.items():
            cohort = self.queues[name].cohort if name in self.queues else None
            if cohort is not None:
                summed = self.cohort_usage.setdefault(cohort, {})
                for resource, amount in used.items():
                    summed[resource] = summed.get(resource, 0) + amount

    def reorder(self, order_key: OrderKey) -> None:
        """Re-sorts the pending jobs for a new policy's queue order."""
        old = self.pending
        self.pending = PendingJobs(order_key)
        for job in old.jobs():
            self.pending.add(job)

    @property
    def capacity(self) -> Resources:
        """The sum of every node's allocatable resources."""
        if self._capacity is None:
            total = Resources()
            for state in self.nodes.values():
                total = total + state.node.allocatable
            self._capacity = total
        return self._capacity

    def cohort_members(self, queue: Queue) -> tuple[Queue, ...]:
        """The queues of ``queue``'s cohort, itself included; ``()`` without a cohort."""
        if queue.cohort is None:
            return ()
        members = self._cohorts.get(queue.cohort)
        if members is None:
            members = tuple(q for q in self.queues.values() if q.cohort == queue.cohort)
            self._cohorts[queue.cohort] = members
        return members

    # -- what happened -------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Adds ``job`` to its queue's pending jobs."""
        if job.queue not in self.queues:
            raise InvalidInput(f"job {job.id}: no queue named {job.queue!r}")
        if job.id in self.running or job.id in self.pending:
            raise InvalidInput(f"job {job.id} is already known")
        self.finished.pop(job.id, None)
        self.pending.add(job)

    def bind(self, job: Job, allocations: Iterable[Allocation], now: float) -> RunningJob:
        """Moves ``job`` from pending to running on ``allocations``."""
        allocs = tuple(allocations)
        if job.id in self.pending:
            self.pending.remove(job.id)
        for alloc in allocs:
            self.index.track(self.nodes[alloc.node], alloc.gpu_kind, alloc_taker(alloc))
        self._add_usage(job.queue, job.total, 1)
        running = RunningJob(job, allocs, now)
        self.running[job.id] = running
        insort(self.ending, running, key=_end_order)
        self.running_by_queue.setdefault(job.queue, {})[job.id] = running
        self.nominated.pop(job.id, None)
        self.alloc_version += 1
        self.queue_alloc_version[job.queue] = self.alloc_version
        return running

    def release(self, job_id: str) -> RunningJob:
        """Frees what running job ``job_id`` holds and forgets it as running."""
        running = self.running.pop(job_id)
        at = bisect_left(self.ending, running.end_order, key=_end_order)
        while self.ending[at] is not running:
            at += 1
        del self.ending[at]
        del self.running_by_queue[running.job.queue][job_id]
        self.preempting.pop(job_id, None)
        self.alloc_version += 1
        self.queue_alloc_version[running.job.queue] = self.alloc_version
        for alloc in running.allocations:
            state = self.nodes.get(alloc.node)
            if state is not None:
                self.index.track(state, alloc.gpu_kind, alloc_giver(alloc))
        self._add_usage(running.job.queue, running.job.total, -1)
        return running

    def _add_usage(self, queue: str, request: Resources, sign: int) -> None:
        add_usage(self.usage, queue, request, sign)
        cohort = self.queues[queue].cohort if queue in self.queues else None
        if cohort is not None:
            add_usage(self.cohort_usage, cohort, request, sign)

    def preempting_for(self, victim_id: str, preemptor_id: str, now: float) -> None:
        """Records that running job ``victim_id`` has been told to stop to make room for
        ``preemptor_id`` (an executor's grace period may pass before it does)."""
        self.preempting[victim_id] = preemptor_id
        self.nominated.setdefault(preemptor_id, now)

    def requeue(
        self,
        job_id: str,
        now: float,
        preemptor: str | None = None,
        estimate: float | None = None,
    ) -> Job:
        """Releases running job ``job_id`` (preempted or lost) and puts it back in its
        queue, crediting the service it received. ``preemptor``, when it was preempted,
        is nominated: later cycles serve it before anyone else. ``estimate``, when the
        caller knows it, replaces the job's duration estimate: how long its next run
        lasts (what is left of its work, and its restore)."""
        running = self.release(job_id)
        job = replace(running.job, queued_at=now, attained_service=running.attained(now))
        if estimate is not None:
            job = replace(job, duration_estimate=max(estimate, 0.0))
        self.pending.add(job)
        if preemptor is not None and preemptor in self.pending:
            self.nominated.setdefault(preemptor, now)
        return job

    def finish(self, job_id: str, state: JobState) -> None:
        """Records that ``job_id`` ended in ``state`` (releasing it if it ran, dropping
        it if it was pending), so its dependants can be resolved."""
        if job_id in self.running:
            self.release(job_id)
        elif job_id in self.pending:
            self.pending.remove(job_id)
        self.nominated.pop(job_id, None)
        self.finished[job_id] = state
