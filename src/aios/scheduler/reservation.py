"""EASY backfill's reservation: when and where a blocked job will fit.

Running jobs are released in the order they should end, on counts of each node's free
room (the cycle's view is not touched), until enough nodes could hold every replica of
the blocked job on one GPU kind. Those nodes are reserved from that job's end (the
shadow time); jobs behind it may start now only if they end by then or stay off them.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from operator import attrgetter

from aios.resources import Allocation, Resources
from aios.scheduler.job import Job, RunningJob
from aios.scheduler.state import NodeState
from aios.scheduler.workspace import Workspace

__all__ = ["Reservation", "RoomCount", "cover", "ending_order", "find_reservation"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """EASY backfill's promise to a blocked job: from ``shadow_time`` it fits on
    ``nodes``; jobs behind it may start now only if they end by then or stay off them."""

    job_id: str
    shadow_time: float
    nodes: frozenset[str]


@dataclass(slots=True)
class RoomCount:
    """What one node has free, as counts: the reservation search adds to it the
    allocations of jobs as they are expected to end."""

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


def cover(
    names: list[str],
    free: dict[str, RoomCount],
    request: Resources,
    kind: str | None,
    replicas: int,
) -> frozenset[str]:
    """The fewest nodes whose room holds ``replicas`` (roomiest first)."""
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


def ending_order(ws: Workspace) -> list[RunningJob]:
    """Running jobs (of the state, then of this cycle) in the order they should end."""
    state = ws.state
    cached = state.memo.get("ending")
    if cached is not None and cached[0] == state.alloc_version:
        ending = cached[1]
        assert isinstance(ending, list)
    else:
        ending = sorted(state.running.values(), key=attrgetter("end_order"))
        state.memo["ending"] = (state.alloc_version, ending)
    if ws.bound:
        ending = list(
            heapq.merge(
                ending,
                sorted(ws.bound.values(), key=attrgetter("end_order")),
                key=attrgetter("end_order"),
            )
        )
    if ws.victims:
        ending = [r for r in ending if r.job.id not in ws.victims]
    return ending


def find_reservation(ws: Workspace, job: Job) -> Reservation | None:
    """Releases running jobs in the order they should end, on counts of free cores,
    memory, GPUs per kind and custom resources (the view itself is not touched),
    until enough nodes could hold every replica on one GPU kind; those nodes are the
    reservation and that job's end is the shadow time."""
    request = job.request
    selector = job.node_selector
    kinds: list[str | None]
    if request.gpus and request.gpu_kind is None:
        kinds = list(ws.index.gpu_kinds)
    else:
        kinds = [request.gpu_kind]
    free: dict[str, RoomCount] = {}
    room: dict[str, list[int]] = {}
    eligible: list[str] = []
    totals = [0] * len(kinds)
    for name, original in ws.state.nodes.items():
        if selector and any(original.node.labels.get(k) != v for k, v in selector):
            continue
        eligible.append(name)
        counts = free[name] = RoomCount.of(ws.node(name))
        slots = room[name] = [counts.slots(request, kind) for kind in kinds]
        for i, n in enumerate(slots):
            totals[i] += n
    for running in ending_order(ws):
        touched: set[str] = set()
        for allocation in running.allocations:
            if allocation.node in free:
                free[allocation.node].add(allocation)
                touched.add(allocation.node)
        for name in touched:
            before = room[name]
            after = room[name] = [free[name].slots(request, kind) for kind in kinds]
            for i in range(len(kinds)):
                totals[i] += after[i] - before[i]
        for i, kind in enumerate(kinds):
            if totals[i] >= job.replicas:
                nodes = cover(eligible, free, request, kind, job.replicas)
                end = running.expected_end
                return Reservation(job.id, math.inf if end is None else end, nodes)
    return None
