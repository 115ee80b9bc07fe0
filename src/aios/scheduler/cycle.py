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
from collections.abc import Iterator
from dataclasses import replace

from aios.resources import Allocation
from aios.scheduler.decisions import (
    Bind,
    CycleResult,
    Decision,
    Preempt,
    Unschedulable,
    UpstreamFailed,
)
from aios.scheduler.framework import Code, Policy, Status
from aios.scheduler.job import Job, JobState, RunningJob
from aios.scheduler.pending import Group
from aios.scheduler.reservation import Reservation, reserve
from aios.scheduler.state import ClusterState
from aios.scheduler.workspace import Workspace

__all__ = ["Bind", "CycleResult", "Decision", "Preempt", "Unschedulable", "UpstreamFailed", "cycle"]

_FAILED_PARENT = frozenset(
    {JobState.FAILED, JobState.CANCELLED, JobState.UPSTREAM_FAILED, JobState.UNSCHEDULABLE}
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
        self.depth = 0
        """Jobs considered behind the blocked head so far."""
        self._stop = False

    # -- phases ---------------------------------------------------------------------
    def run(self) -> CycleResult:
        self.resolve_dependencies()
        self.serve_nominated()
        if self.policy.starvation_limit is not None and not self.policy.strict:
            # A strict order already serves its head first; the guard is for the rest.
            self.serve_starving(self.policy.starvation_limit)
        done = self.done
        for job in self.walk():
            if job.id in done or (job.dependencies and not self.dependencies_met(job)):
                continue
            self.result.considered += 1
            if self.blocked_head is not None:
                self.depth += 1
                if self.depth > self.policy.backfill_depth:
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
        over_quota: set[int] = set()
        done = self.done
        now = self.now
        for enqueued, job, key, has_dependencies in self._oldest():
            if now - enqueued < limit:
                return
            if key in over_quota and not has_dependencies:
                continue
            if job.id in done or (has_dependencies and not self.dependencies_met(job)):
                continue
            if key in over_quota:
                continue
            status = self.admit(job)
            if status.code is Code.WAIT:
                over_quota.add(key)
            if status.code is Code.UNSCHEDULABLE:
                if not self.preempt(job):
                    self.blocked_head = job
                return

    def _oldest(self) -> list[tuple[float, Job, int, bool]]:
        """The 64 longest waiting jobs, oldest first, each with when it entered its queue,
        a number shared by the jobs of one queue and total (which share a quota verdict)
        and whether it has dependencies; kept in the state while they stay the same."""
        pending = self.state.pending
        entries = pending.oldest_entries(64)
        memo = self.state.memo.get("oldest")
        if memo is not None and memo[0] == entries:
            kept = memo[1]
            assert isinstance(kept, list)
            return kept
        numbers: dict[tuple[str, object], int] = {}
        oldest: list[tuple[float, Job, int, bool]] = []
        for enqueued, _, job_id in entries:
            job = pending.get(job_id)
            assert job is not None
            key = numbers.setdefault((job.queue, job.total), len(numbers))
            oldest.append((enqueued, job, key, bool(job.dependencies)))
        self.state.memo["oldest"] = (entries, oldest)
        return oldest

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
        # The queues by (share, name). A share changes only with its queue's usage: a
        # queue whose usage changed gets a new entry, and entries that no longer hold
        # (an old share, a queue with nothing left) are dropped when they come first.
        ws = self.ws
        shares = {q: fair.share(q, ws) for q in heaps}
        order = [(share, q) for q, share in shares.items()]
        heapq.heapify(order)
        version = ws.usage_version
        while heaps:
            if ws.usage_version != version:
                changed = ws.queue_versions
                for q in heaps:
                    if changed.get(q, 0) > version:
                        share = fair.share(q, ws)
                        if share != shares[q]:
                            shares[q] = share
                            heapq.heappush(order, (share, q))
                version = ws.usage_version
            while order[0][1] not in heaps or order[0][0] != shares[order[0][1]]:
                heapq.heappop(order)
            queue = order[0][1]
            heap, members = heaps[queue]
            job = self._next(heap, members)
            if job is not None:
                yield job
                self._after(heap, members)
            if self._stop:
                return
            if not heap or queue in self.blocked_queues:
                del heaps[queue]

    @staticmethod
    def _heap(groups: list[Group]) -> tuple[list[tuple[float, int, int, int]], list[Group]]:
        heap = [(g.entries[0][0], g.entries[0][1], i, 0) for i, g in enumerate(groups)]
        heapq.heapify(heap)
        return heap, groups

    def _walk_heap(self, groups: list[Group]) -> Iterator[Job]:
        heap, members = self._heap(groups)
        while heap and not self._stop:
            job = self._next(heap, members)
            if job is not None:
                yield job
                self._after(heap, members)

    def _next(self, heap: list[tuple[float, int, int, int]], groups: list[Group]) -> Job | None:
        """The job at the top of ``heap``; None when its group is skipped whole, or when
        jobs of it were passed over and another group's job comes next."""
        _, _, index, position = heap[0]
        group = groups[index]
        self._reject_current = False
        if group.queue in self.blocked_queues or self._cannot_fit(group):
            heapq.heappop(heap)
            return None
        self._current = group
        entries = group.entries
        if self.blocked_head is not None and id(group) in self._no_room_off_reservation:
            position, take_next = self._pass_over(heap, group, position)
            if self._stop or position >= len(entries):
                heapq.heappop(heap)
                return None
            key, seq, job = entries[position]
            if not take_next:
                heapq.heapreplace(heap, (key, seq, index, position))
                return None
            heap[0] = (key, seq, index, position)  # still the least entry
            return job
        return entries[position][2]

    def _after(self, heap: list[tuple[float, int, int, int]], groups: list[Group]) -> None:
        """Moves ``heap`` past the job :meth:`_next` gave: to the next job of its group,
        or drops the group when the job rejected it or it has no more jobs."""
        _, _, index, position = heap[0]
        entries = groups[index].entries
        position += 1
        if self._reject_current or position >= len(entries):
            heapq.heappop(heap)
        else:
            key, seq, _ = entries[position]
            heapq.heapreplace(heap, (key, seq, index, position))

    def _pass_over(
        self, heap: list[tuple[float, int, int, int]], group: Group, position: int
    ) -> tuple[int, bool]:
        """Counts as considered, without trying them, the jobs of ``group`` from
        ``position`` on that :meth:`backfill` would pass over (their shape has no room
        off the reservation and they do not end before it), while they come before
        every other group's next job. Returns the position of the first job not passed
        over, and whether it comes next in order (else another group's job does)."""
        assert self.reservation is not None
        shadow = self.reservation.shadow_time
        now = self.now
        following = min(heap[1:3]) if len(heap) > 1 else None
        entries = group.entries
        done = self.done
        depth_limit = self.policy.backfill_depth
        while position < len(entries):
            key, seq, job = entries[position]
            if following is not None and (key, seq) > (following[0], following[1]):
                return position, False
            if job.id in done or job.dependencies:
                break
            runtime = job.expected_runtime
            if runtime is not None and shadow < math.inf and now + runtime <= shadow:
                break
            self.result.considered += 1
            self.depth += 1
            if self.depth > depth_limit:
                self._stop = True
                break
            position += 1
        return position, True

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
        """Keeps for ``job``, for the rest of this cycle, the room and quota it needs
        beside what its ``victims`` will leave (see :meth:`Workspace.hold`)."""
        if self.ws.hold(job, victims):
            self.done.add(job.id)
            self.result.reasons[job.id] = "waiting for preempted jobs to stop"

    def reserve_for(self, job: Job) -> Reservation | None:
        """Finds when and where ``job`` will fit if running jobs end as expected (jobs
        with no estimate are assumed to end last, longest running first). Counts how many
        replicas each node's free GPUs could hold as jobs end, and tries a placement only
        once they could suffice. Remembered in the state while it still holds."""
        found = reserve(self.ws, job)
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
