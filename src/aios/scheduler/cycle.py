"""One scheduling cycle: a ClusterState and the time in, decisions out.

Phases (after Kueue's scheduler): resolve dependencies → serve the starving → walk the
queues in policy order, for each job pre-filter, place, permit and reserve, or else try
preemption → once a head is blocked (strict order, or a starving job) make an EASY
reservation for it and only backfill behind it. The cycle reads no clock and does no
I/O: the same state, time and policy give the same decisions.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from aios.resources import Allocation
from aios.scheduler.framework import Code, Policy, Status
from aios.scheduler.job import Job, JobState, RunningJob
from aios.scheduler.pending import Group
from aios.scheduler.reservation import Reservation, find_reservation
from aios.scheduler.state import ClusterState
from aios.scheduler.workspace import Workspace

__all__ = ["Bind", "CycleResult", "Decision", "Preempt", "Unschedulable", "UpstreamFailed", "cycle"]

_FAILED_PARENT = frozenset(
    {JobState.FAILED, JobState.CANCELLED, JobState.UPSTREAM_FAILED, JobState.UNSCHEDULABLE}
)


@dataclass(frozen=True, slots=True)
class Bind:
    """Start ``job`` with one allocation per replica."""

    job: Job
    allocations: tuple[Allocation, ...]
    backfilled: bool = False


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop running job ``victim`` so that ``preemptor`` can start in a later cycle."""

    victim: RunningJob
    preemptor: str
    reason: str


@dataclass(frozen=True, slots=True)
class UpstreamFailed:
    """``job_id`` will never run: its dependency ``parent`` did not succeed."""

    job_id: str
    parent: str


@dataclass(frozen=True, slots=True)
class Unschedulable:
    """``job_id`` can never fit this cluster (or its queue's quota) as it is."""

    job_id: str
    reason: str


Decision = Bind | Preempt | UpstreamFailed | Unschedulable


@dataclass(slots=True)
class CycleResult:
    decisions: list[Decision] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    """Why a job the cycle looked at stays pending, in words."""
    considered: int = 0

    @property
    def binds(self) -> list[Bind]:
        return [d for d in self.decisions if isinstance(d, Bind)]

    @property
    def preemptions(self) -> list[Preempt]:
        return [d for d in self.decisions if isinstance(d, Preempt)]


def _beyond(allocation: Allocation, victims: Sequence[RunningJob]) -> Allocation:
    """The part of ``allocation`` that its node's ``victims`` do not hold now."""
    cores: set[int] = set()
    gpus: set[int] = set()
    memory = 0
    custom: dict[str, int] = {}
    for victim in victims:
        for held in victim.allocations:
            if held.node == allocation.node:
                cores.update(held.cores)
                gpus.update(held.gpus)
                memory += held.memory
                for name, amount in held.custom:
                    custom[name] = custom.get(name, 0) + amount
    return Allocation(
        allocation.node,
        tuple(c for c in allocation.cores if c not in cores),
        tuple(g for g in allocation.gpus if g not in gpus),
        max(allocation.memory - memory, 0),
        allocation.gpu_kind,
        tuple(
            (name, amount - custom.get(name, 0))
            for name, amount in allocation.custom
            if amount > custom.get(name, 0)
        ),
    )


def cycle(state: ClusterState, now: float, policy: Policy) -> CycleResult:
    """Runs one scheduling cycle over ``state`` at time ``now`` and returns the decisions.

    ``state`` is not changed; the caller applies the decisions (and must have built
    ``state.pending`` with ``policy.order_key``).
    """
    return _Cycle(state, now, policy).run()


class _Cycle:
    def __init__(self, state: ClusterState, now: float, policy: Policy) -> None:
        self.state = state
        self.now = now
        self.policy = policy
        self.ws = Workspace(state, policy, now)
        self.result = CycleResult()
        self.done: set[str] = set()
        self.reservation: Reservation | None = None
        self.blocked_head: Job | None = None
        """The job the cycle reserves for; its reservation is computed when a job behind
        it is first tried (often never: when no shape has room, nothing is tried)."""
        self._reservation_known = False
        levels = self.ws.index.levels
        self._largest_gpus = max((len(levels[k]) - 1 for k in self.ws.index.gpu_kinds), default=0)
        self.blocked_queues: set[str] = set()
        self.preemption_attempts = 0
        self._reject_current = False
        self._current: Group | None = None
        self._no_room_off_reservation: set[int] = set()

    # -- phases ---------------------------------------------------------------------
    def run(self) -> CycleResult:
        self.resolve_dependencies()
        self.serve_nominated()
        if self.policy.starvation_limit is not None and not self.policy.strict:
            # A strict order already serves its head first; the guard is for the rest.
            self.serve_starving(self.policy.starvation_limit)
        depth = 0
        done = self.done
        for job in self.walk():
            if job.id in done or (job.dependencies and not self.dependencies_met(job)):
                continue
            self.result.considered += 1
            if self.blocked_head is not None:
                depth += 1
                if depth > self.policy.backfill_depth:
                    break
                self.backfill(job)
                continue
            status = self.admit(job)
            if status.ok or status.code is Code.UNRESOLVABLE:
                continue
            if self.preempt(job):
                # Its room is held for it; a strict order still lets nobody pass it.
                if self.policy.strict and not self.policy.backfill:
                    break
                self._reject_current = True
                continue
            if status.code is Code.WAIT:
                # Over quota: the queue waits, others go on (a per-queue strict order).
                if self.policy.strict:
                    self.blocked_queues.add(job.queue)
                self._reject_current = True
                continue
            if self.policy.strict:
                if self.policy.backfill:
                    self.blocked_head = job
                    continue
                break
            self._reject_current = True
        return self.result

    def serve_nominated(self) -> None:
        """Jobs that caused preemptions go first, in the order they did: their room is
        being freed for them. While their victims are still stopping, the room they
        will get is held so that nobody else takes it (no preemption livelock)."""
        state = self.state
        if not state.nominated:
            return
        in_flight: dict[str, list[RunningJob]] = {}
        for victim, preemptor in state.preempting.items():
            running = state.running.get(victim)
            if running is not None:
                in_flight.setdefault(preemptor, []).append(running)
        for job_id in sorted(state.nominated, key=state.nominated.__getitem__):
            job = state.pending.get(job_id)
            if job is None or job.id in self.done or not self.dependencies_met(job):
                continue
            status = self.admit(job)
            if status.ok or status.code is Code.UNRESOLVABLE:
                continue
            victims = in_flight.get(job_id)
            if victims:
                self.hold(job, victims)
            else:
                self.preempt(job)

    def resolve_dependencies(self) -> None:
        finished = self.state.finished
        for job in list(self.state.pending.with_dependencies.values()):
            for parent in job.dependencies:
                if finished.get(parent) in _FAILED_PARENT:
                    self.result.decisions.append(UpstreamFailed(job.id, parent))
                    self.done.add(job.id)
                    break

    def dependencies_met(self, job: Job) -> bool:
        if not job.dependencies:
            return True
        finished = self.state.finished
        for parent in job.dependencies:
            if finished.get(parent) is not JobState.SUCCEEDED:
                self.result.reasons[job.id] = f"waiting for dependency {parent}"
                return False
        return True

    def serve_starving(self, limit: float) -> None:
        """Places jobs that waited past ``limit``, oldest first; the first that does not
        fit gets the cycle's reservation, whatever the policy's order says."""
        over_quota: set[tuple[str, object]] = set()
        for tried, job in enumerate(self.state.pending.oldest()):
            if self.now - job.enqueued < limit or tried >= 64:
                return
            if job.id in self.done or not self.dependencies_met(job):
                continue
            if (job.queue, job.total) in over_quota:
                continue
            status = self.admit(job)
            if status.code is Code.WAIT:
                over_quota.add((job.queue, job.total))
            if status.code is Code.UNSCHEDULABLE:
                if not self.preempt(job):
                    self.blocked_head = job
                return

    def walk(self) -> Iterator[Job]:
        """Yields pending jobs in policy order; a job whose successor should be skipped
        (its group cannot fit this cycle) sets ``_reject_current`` before the next."""
        groups = [g for g in self.state.pending.groups() if g.queue not in self.blocked_queues]
        fair = self.policy.fair_share
        if fair is None:
            yield from self._walk_heap(groups)
            return
        by_queue: dict[str, list[Group]] = {}
        for group in groups:
            by_queue.setdefault(group.queue, []).append(group)
        heaps = {q: self._heap(gs) for q, gs in by_queue.items()}
        while heaps:
            queue = min(heaps, key=lambda q: (fair.share(q, self.ws), q))
            heap, members = heaps[queue]
            index, position = heap[0][2], heap[0][3]
            yield from self._step(heap, members, index, position)
            if not heap or queue in self.blocked_queues:
                del heaps[queue]

    @staticmethod
    def _heap(groups: list[Group]) -> tuple[list[tuple[float, int, int, int]], list[Group]]:
        heap = [(g.entries[0][0], g.entries[0][1], i, 0) for i, g in enumerate(groups)]
        heapq.heapify(heap)
        return heap, groups

    def _walk_heap(self, groups: list[Group]) -> Iterator[Job]:
        heap, members = self._heap(groups)
        while heap:
            index, position = heap[0][2], heap[0][3]
            yield from self._step(heap, members, index, position)

    def _step(
        self,
        heap: list[tuple[float, int, int, int]],
        groups: list[Group],
        index: int,
        position: int,
    ) -> Iterator[Job]:
        group = groups[index]
        self._reject_current = False
        if group.queue in self.blocked_queues or self._cannot_fit(group):
            heapq.heappop(heap)
            return
        self._current = group
        yield group.entries[position][2]
        position += 1
        if self._reject_current or position >= len(group.entries):
            heapq.heappop(heap)
        else:
            key, seq, _ = group.entries[position]
            heapq.heapreplace(heap, (key, seq, index, position))

    def _cannot_fit(self, group: Group) -> bool:
        """True when no node has as many free GPUs as one replica of the group needs and
        skipping it unseen changes nothing: it could not preempt (behind a reservation,
        or a policy without preemption) and its order is not binding (non-strict)."""
        gpus = group.shape[2]
        if not isinstance(gpus, int) or not gpus:
            return False
        if self.blocked_head is None and (self.policy.strict or self.policy.post_filters):
            return False
        # A shape no node could ever hold is visited, to be reported unschedulable.
        return self._largest_gpus >= gpus > self.ws.max_free_gpus()

    # -- one job ----------------------------------------------------------------------
    def admit(self, job: Job) -> Status:
        """Places ``job`` if it fits now; returns why not otherwise."""
        status, allocations = self.ws.place(job)
        if status.ok:
            self.bind(job, allocations, backfilled=False)
        elif status.code is Code.UNRESOLVABLE:
            self.result.decisions.append(Unschedulable(job.id, status.reason))
            self.done.add(job.id)
        else:
            self.result.reasons[job.id] = status.reason
        return status

    def bind(self, job: Job, allocations: tuple[Allocation, ...], backfilled: bool) -> None:
        self.ws.commit(job, allocations)
        self.result.decisions.append(Bind(job, allocations, backfilled))
        self.done.add(job.id)
        self.result.reasons.pop(job.id, None)

    def preempt(self, job: Job) -> bool:
        """Asks the post-filters for victims; records their preemption if any."""
        if not self.policy.post_filters or self.preemption_attempts >= 16:
            return False
        self.preemption_attempts += 1
        for plugin in self.policy.post_filters:
            victims = plugin.post_filter(job, self.ws, self.now)
            if victims:
                for victim in victims:
                    self.ws.victims.add(victim.job.id)
                    self.result.decisions.append(Preempt(victim, job.id, plugin.name))
                self.hold(job, victims)
                self.result.reasons[job.id] = f"preempting {len(victims)} job(s) to make room"
                return True
        return False

    def hold(self, job: Job, victims: list[RunningJob] | tuple[RunningJob, ...]) -> None:
        """Keeps for ``job``, for the rest of this cycle, the free room it needs beside
        what its ``victims`` will leave. The victims' own resources stay held too: they
        are still running until they stop, so nothing may be bound onto them."""
        ws = self.ws
        for victim in victims:
            ws.unbind(victim)
        status, allocations = ws.place(job)
        if status.ok:
            ws.undo(allocations)
        for victim in victims:
            ws.rebind(victim)
        if not status.ok:
            return
        for allocation in allocations:
            ws.take_exact(_beyond(allocation, victims))
        ws.usage_version += 1
        self.done.add(job.id)
        self.result.reasons[job.id] = "waiting for preempted jobs to stop"

    def reserve_for(self, job: Job) -> Reservation | None:
        """Finds when and where ``job`` will fit if running jobs end as expected (jobs
        with no estimate are assumed to end last, longest running first). Counts how many
        replicas each node's free GPUs could hold as jobs end, and tries a placement only
        once they could suffice. Remembered in the state until allocations change."""
        ws, state = self.ws, self.state
        key = (state.alloc_version, state.node_version, job.id, job.request, job.replicas)
        pristine = ws.pristine
        cached = state.memo.get("reservation") if pristine else None
        if cached is not None and cached[0] == key:
            found = cached[1]
            assert found is None or isinstance(found, Reservation)
        else:
            found = find_reservation(self.ws, job)
            if pristine:
                state.memo["reservation"] = (key, found)
        if found is None:
            return None
        self.result.reasons[job.id] = "reserved: starts when running jobs end"
        return replace(found, shadow_time=max(found.shadow_time, self.now))

    def backfill(self, job: Job) -> None:
        """Starts ``job`` behind a reservation if it cannot delay the reserved job."""
        assert self.blocked_head is not None
        if not self._reservation_known:
            self._reservation_known = True
            self.reservation = self.reserve_for(self.blocked_head)
        if self.reservation is None:
            # The blocked job fits nowhere even when everything ends: nobody may pass.
            self.result.reasons[job.id] = f"waits behind {self.blocked_head.id}"
            return
        runtime = job.expected_runtime
        shadow = self.reservation.shadow_time
        # An unknown shadow time (jobs without estimates) promises nothing to end by.
        ends_in_time = runtime is not None and shadow < math.inf and self.now + runtime <= shadow
        exclude = frozenset() if ends_in_time else self.reservation.nodes
        group = id(self._current)
        if exclude and group in self._no_room_off_reservation:
            # Same shape already found no room off the reserved nodes in this cycle.
            return
        status, allocations = self.ws.place(job, exclude)
        if status.ok:
            self.bind(job, allocations, backfilled=True)
        elif status.code is Code.UNRESOLVABLE:
            self.result.decisions.append(Unschedulable(job.id, status.reason))
            self.done.add(job.id)
        else:
            self.result.reasons[job.id] = "waits behind a reservation"
            if status.code is Code.WAIT or not exclude or not self.ws.fits(job):
                # Does not fit even on the reserved nodes: nothing of its shape does.
                self._reject_current = True
            else:
                self._no_room_off_reservation.add(group)
