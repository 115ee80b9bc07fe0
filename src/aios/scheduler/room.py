"""Counting room: how many replicas of a job the nodes could hold as running jobs give
back what they hold, on counts alone (the cycle's view is not touched).

Placement needs, for one GPU kind, nodes whose free cores, memory, GPUs of that kind and
custom resources hold every replica; the count of replicas each node could hold (its
*slots*) is exact for that, so a job whose slots fall short cannot be placed however the
cycle tries. The EASY reservation asks when the slots first suffice as jobs end; the
preemption search asks after how many victims they first could.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aios.resources import Allocation, Resources
from aios.scheduler.job import Job, RunningJob
from aios.scheduler.state import NodeState
from aios.scheduler.workspace import Workspace

__all__ = ["RoomCount", "RoomScan", "cover"]


@dataclass(slots=True)
class RoomCount:
    """What one node has free, as counts, to which released allocations are added."""

    cores: int
    memory: int
    gpus: dict[str, int]
    custom: dict[str, int]

    @classmethod
    def of(cls, node: NodeState) -> RoomCount:
        gpus = {kind: len(ids) for kind, ids in node.free_gpus.items()}
        return cls(len(node.free_cores), node.free_memory, gpus, dict(node.free_custom))

    def add(self, allocation: Allocation) -> None:
        self.cores += len(allocation.cores)
        self.memory += allocation.memory
        if allocation.gpu_kind:
            kind = allocation.gpu_kind
            self.gpus[kind] = self.gpus.get(kind, 0) + len(allocation.gpus)
        for name, amount in allocation.custom:
            self.custom[name] = self.custom.get(name, 0) + amount

    def slots(self, request: Resources, kind: str | None) -> int:
        """How many replicas of ``request`` (its GPUs of ``kind``) fit in this room."""
        count = 1 << 30
        cores = -(-request.cpu // 1000)
        if cores:
            count = self.cores // cores
        if request.memory:
            count = min(count, self.memory // request.memory)
        if request.gpus:
            count = min(count, self.gpus.get(kind, 0) // request.gpus if kind else 0)
        for name, amount in request.custom:
            count = min(count, self.custom.get(name, 0) // amount)
        return count


class RoomScan:
    """The slots of every node a job may use, per GPU kind it may take (:attr:`kinds`),
    as running jobs are released one by one with :meth:`release`.

    Only nodes with room for a replica now, and those a release touched, are counted:
    every other node holds no replica (for a GPU job, too few GPUs of each kind), so the
    totals equal those of counting the whole cluster.
    """

    __slots__ = ("_cores", "eligible", "free", "job", "kinds", "room", "totals", "ws")

    def __init__(self, ws: Workspace, job: Job) -> None:
        self.ws = ws
        self.job = job
        request = job.request
        self.kinds: list[str | None]
        if request.gpus and request.gpu_kind is None:
            self.kinds = list(ws.index.gpu_kinds)
        else:
            self.kinds = [request.gpu_kind]
        self.free: dict[str, RoomCount] = {}
        self.room: dict[str, list[int]] = {}
        self.eligible: dict[str, bool] = {}
        self.totals = [0] * len(self.kinds)
        self._cores = -(-request.cpu // 1000)
        for name in self._with_room(request):
            self._count(name)

    def slots(self, counts: RoomCount) -> list[int]:
        """How many replicas ``counts`` holds, per GPU kind of :attr:`kinds` (as
        :meth:`RoomCount.slots` for each)."""
        request = self.job.request
        count = 1 << 30
        if self._cores:
            count = counts.cores // self._cores
        if request.memory:
            count = min(count, counts.memory // request.memory)
        for name, amount in request.custom:
            count = min(count, counts.custom.get(name, 0) // amount)
        gpus = request.gpus
        if not gpus:
            return [count] * len(self.kinds)
        free = counts.gpus
        return [min(count, free.get(kind, 0) // gpus) if kind else 0 for kind in self.kinds]

    def _with_room(self, request: Resources) -> Iterable[str]:
        """The nodes that may hold a replica now."""
        if not request.gpus:
            return self.ws.state.nodes
        levels = self.ws.index.levels
        found: set[str] = set()
        for kind in self.kinds:
            by_level = levels.get(kind or "", ())
            for level in range(request.gpus, len(by_level)):
                found.update(by_level[level])
        return found

    def _count(self, name: str) -> RoomCount | None:
        """Counts node ``name`` from now on; None when the job may not use it."""
        eligible = self.eligible.get(name)
        if eligible is None:
            node = self.ws.state.nodes.get(name)
            selector = self.job.node_selector
            eligible = self.eligible[name] = node is not None and not (
                selector and any(node.node.labels.get(k) != v for k, v in selector)
            )
        if not eligible:
            return None
        counts = self.free.get(name)
        if counts is None:
            counts = self.free[name] = RoomCount.of(self.ws.node(name))
            slots = self.room[name] = self.slots(counts)
            for i, n in enumerate(slots):
                self.totals[i] += n
        return counts

    def enough(self) -> int:
        """The index in :attr:`kinds` of the first GPU kind whose slots hold every
        replica, or -1 while none does."""
        replicas = self.job.replicas
        for i, total in enumerate(self.totals):
            if total >= replicas:
                return i
        return -1

    def any_room(self) -> bool:
        """Whether some node could hold one replica, on any GPU kind."""
        return any(self.totals)

    def release(self, running: RunningJob) -> None:
        """Adds what ``running`` holds to the room of its nodes."""
        free, room, totals = self.free, self.room, self.totals
        for allocation in running.allocations:
            name = allocation.node
            counts = free.get(name)
            if counts is None:
                counts = self._count(name)
                if counts is None:
                    continue
            counts.add(allocation)
            before = room[name]
            after = room[name] = self.slots(counts)
            for i, n in enumerate(after):
                totals[i] += n - before[i]

    def cover(self, kind: int) -> frozenset[str]:
        """The fewest nodes whose room holds every replica on GPUs of ``kinds[kind]``."""
        counted = [name for name in self.ws.state.nodes if name in self.free]
        return cover(counted, self.free, self.job.request, self.kinds[kind], self.job.replicas)


def cover(
    names: list[str],
    free: dict[str, RoomCount],
    request: Resources,
    kind: str | None,
    replicas: int,
) -> frozenset[str]:
    """The fewest nodes whose room holds ``replicas`` (roomiest first, then in the order
    of ``names``)."""
    by_room = sorted(names, key=lambda n: -free[n].slots(request, kind))
    chosen: list[str] = []
    held = 0
    for name in by_room:
        if held >= replicas:
            break
        room = free[name].slots(request, kind)
        if room <= 0:
            break
        chosen.append(name)
        held += room
    return frozenset(chosen)
