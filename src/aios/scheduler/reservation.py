"""EASY backfill's reservation: when and where a blocked job will fit.

Running jobs are released in the order they should end, on counts of each node's free
room (the cycle's view is not touched), until enough nodes could hold every replica of
the blocked job on one GPU kind. Those nodes are reserved from that job's end (the
shadow time); jobs behind it may start now only if they end by then or stay off them.

A search is remembered with what it rests on (:class:`Trail`), and :func:`reserve`
answers from it while that still holds: jobs that start or end *before* the shadow job
in the ending order change neither the room the search stopped at nor its answer, so
finishes and short backfilled jobs cost no new search.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from dataclasses import dataclass
from operator import attrgetter

from aios.scheduler.job import Job, RunningJob
from aios.scheduler.room import RoomScan
from aios.scheduler.workspace import Workspace

__all__ = ["Reservation", "Trail", "ending_order", "find_reservation", "reserve"]

_END_ORDER = attrgetter("end_order")


@dataclass(frozen=True, slots=True)
class Reservation:
    """EASY backfill's promise to a blocked job: from ``shadow_time`` it fits on
    ``nodes``; jobs behind it may start now only if they end by then or stay off them."""

    job_id: str
    shadow_time: float
    nodes: frozenset[str]


def ending_order(ws: Workspace) -> list[RunningJob]:
    """Running jobs (of the state, then of this cycle) in the order they should end."""
    ending = ws.state.ending
    if ws.bound:
        ending = list(
            heapq.merge(ending, sorted(ws.bound.values(), key=_END_ORDER), key=_END_ORDER)
        )
    if ws.victims:
        ending = [r for r in ending if r.job.id not in ws.victims]
    return ending


def find_reservation(ws: Workspace, job: Job) -> Reservation | None:
    """Releases running jobs in the order they should end, on counts of free cores,
    memory, GPUs per kind and custom resources (the view itself is not touched),
    until enough nodes could hold every replica on one GPU kind; those nodes are the
    reservation and that job's end is the shadow time."""
    return _search(ws, job, ending_order(ws))[0]


def _search(ws: Workspace, job: Job, ending: list[RunningJob]) -> tuple[Reservation | None, int]:
    """:func:`find_reservation` over ``ending``; also returns the position in it of the
    job whose end completes the room (-1 when none does)."""
    scan = RoomScan(ws, job)
    for position, running in enumerate(ending):
        scan.release(running)
        kind = scan.enough()
        if kind >= 0:
            end = running.expected_end
            shadow = math.inf if end is None else end
            return Reservation(job.id, shadow, scan.cover(kind)), position
    return None, -1


@dataclass(frozen=True, slots=True)
class Trail:
    """A search's answer and what it rests on. With no victims and no held room, the
    room the search counted when ``last`` ends is every node less what the jobs ending
    after it (``later``) hold, and the room just before was short of the job. While
    ``last`` still comes right before ``later`` in the ending order, whatever started or
    ended before it, the search would stop at ``last`` on the same counts; jobs that
    started since and end after it, on none of the reserved nodes, leave those nodes'
    room as it was and others' only smaller, so the answer stands too."""

    key: tuple[object, ...]
    found: Reservation | None
    last: RunningJob | None
    """The job whose end completes the room; None when no end does."""
    later: list[RunningJob]
    first: bool
    """``last`` was the first job to end (the room before it was never counted)."""
    searched: bool
    """Some job was released in the search (for ``found`` None: everything ending was
    counted and was not enough)."""

    def follow(self, ending: list[RunningJob]) -> Trail | None:
        """The trail of a search over ``ending`` (no victims, no held room) when it gives
        ``found`` again, else None."""
        last = self.last
        if last is None:
            # Every job ending leaves the whole cluster, which was not enough.
            return self if self.searched or not ending else None
        at = bisect_right(ending, last.end_order, key=_END_ORDER)
        if at == 0 or (self.first and at != 1):
            return None
        shadow = ending[at - 1]
        if not (shadow is last or shadow == last):
            return None
        later = ending[at:]
        if later == self.later:
            return self
        assert self.found is not None
        reserved = self.found.nodes
        known = {(running.job.id, running.started) for running in self.later}
        kept: list[RunningJob] = []
        for running in later:
            if (running.job.id, running.started) in known:
                kept.append(running)
            elif any(allocation.node in reserved for allocation in running.allocations):
                return None
        if kept != self.later:
            return None
        return Trail(self.key, self.found, last, later, self.first, True)


def reserve(ws: Workspace, job: Job) -> Reservation | None:
    """:func:`find_reservation`, answered from the state's last search for ``job`` while
    its :class:`Trail` holds. A view with victims or held room is searched afresh."""
    state = ws.state
    ending = ending_order(ws)
    if ws.victims or ws.holds:
        return _search(ws, job, ending)[0]
    key = (job.id, job.request, job.replicas, job.node_selector, state.node_version)
    memo = state.memo.get("reservation")
    if memo is not None:
        trail = memo[1]
        assert isinstance(trail, Trail)
        followed = trail.follow(ending) if trail.key == key else None
        if followed is not None:
            if followed is not trail:
                state.memo["reservation"] = (None, followed)
            return followed.found
    found, position = _search(ws, job, ending)
    if position < 0:
        state.memo["reservation"] = (None, Trail(key, found, None, [], False, bool(ending)))
        return found
    last = ending[position]
    at = bisect_right(ending, last.end_order, key=_END_ORDER)
    if at == position + 1:  # no job ending at the same moment after it
        trail = Trail(key, found, last, ending[at:], position == 0, True)
        state.memo["reservation"] = (None, trail)
    return found
