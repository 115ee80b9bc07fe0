"""The reconcile loop: database state → scheduler cycle → executor → database state.

One thread owns every change to jobs, so a submission, a cancellation, an exit and a
scheduling decision never race. Other threads (the API) hand it work with
:meth:`Reconciler.call` and wake it; it also wakes on a process exit and on a tick.
Each state change is written with its event row in one transaction; a binding is
committed before its process is launched, so a crash in between is found on restart
(the attempt has no process handle) and never launches the job twice. The launch
itself runs on the :class:`~aios.control.launcher.Launcher`'s thread, so that the loop
does not wait for new processes to exist.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from aios.control.attempts import Attempt
from aios.control.codecs import allocation_to_json, queue_from_row, scheduler_job
from aios.control.events import EVENTS, record, write_events
from aios.control.launcher import Launch, Launcher
from aios.control.launching import Launching, has_data
from aios.control.layout import control_dir
from aios.control.learning import learn_from_history, learn_from_job
from aios.control.recovery import recover
from aios.control.rows import QUEUED, RowChanges
from aios.control.snapshot import ClusterView, take_view
from aios.control.workdirs import Workdirs
from aios.executors.base import Executor, ExitReason, LaunchSpec, ProcessExit, StopReason
from aios.lineage.jobs import record_lineage
from aios.loop import Loop
from aios.resources import Allocation, Node
from aios.scheduler import (
    Bind,
    ClusterState,
    CycleResult,
    JobState,
    Policy,
    Preempt,
    Unschedulable,
    UpstreamFailed,
    cycle,
)
from aios.scheduler.policies import check_live
from aios.store import Database, JobRow, QueueRow

__all__ = ["QUEUED", "Reconciler"]

log = logging.getLogger("aios.control")
T = TypeVar("T")
Work = Callable[[Session, float], Any]
ENDED = "aios.ended"
ADMITTED = "aios.admitted"
MAX_BACKOFF = 600.0


@dataclass(slots=True)
class CycleStats:
    """What the last cycles did, for metrics and the API."""

    cycles: int = 0
    last_duration: float = 0.0
    observers: list[Callable[[float, float, CycleResult], None]] = field(default_factory=list)


class Reconciler:
    """Owns the scheduler's :class:`ClusterState` and keeps it, the database and the
    executor in agreement."""

    def __init__(
        self,
        db: Database,
        executor: Executor,
        nodes: Iterable[Node],
        policy: Policy,
        home: Path,
        clock: Callable[[], float] = time.time,
        tick: float = 1.0,
        elastic: bool = False,
    ) -> None:
        check_live(policy)
        self.db = db
        self.executor = executor
        self.policy = policy
        self.home = home
        self.clock = clock
        self.tick = tick
        self.state = ClusterState(list(nodes), (), order_key=policy.order_key)
        self._generation = 0
        """The learner's generation the pending jobs were last ordered at."""
        self.stats = CycleStats()
        self.attempts: dict[int, Attempt] = {}
        self._reasons: dict[int, str] = {}
        self._backoff: list[tuple[float, int]] = []
        self._inbox: SimpleQueue[tuple[Work, Future[Any]]] = SimpleQueue()
        self._loop = Loop("aios-reconcile", self._pass, tick)
        self.queue_rows: dict[str, QueueRow] = {}
        self.launching = Launching(home)
        """What replicas are launched with (set before :meth:`start`)."""
        self.rows: dict[int, JobRow] = {}
        """The rows of queued and running jobs: held here so that the session's
        identity map (which holds rows weakly) answers for them without a query."""
        self.session = db.sessions()
        """The loop's own session: its identity map keeps the rows of live jobs, so the
        loop reads them without a query; only the loop writes, so they never go stale."""
        self.changes = RowChanges()
        """The loop's changes to job and attempt rows, written by the next transaction
        to commit (see :meth:`transaction`)."""
        self._lock = threading.RLock()
        """Held while the loop changes :attr:`state` (and the launcher its attempts);
        :meth:`view` takes it to copy the state out."""
        self.elastic = elastic
        self._view: tuple[tuple[object, ...], ClusterView] | None = None
        """The last view taken and what it was taken at: a reader on the API's hot path
        (every submission asks for the queues) copies the state only when it changed."""
        """Whether nodes may join later (a Ray cluster): a job no node can hold then
        waits for one instead of ending unschedulable."""
        self.workdirs = Workdirs(home)
        self.launcher = Launcher(
            home,
            executor,
            self.changes,
            self._lock,
            current=lambda attempt: self.attempts.get(attempt.job_id) is attempt,
            clock=clock,
            wake=self.wake,
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction on the loop's session, with the row changes and event lines
        recorded in it; the rows of jobs that ended in it are then forgotten by the
        session, and the directories of jobs admitted in it are made ahead. A rollback
        also drops the row changes and reloads the rows."""
        session = self.session
        try:
            # Reading a row outside a transaction may have begun one already.
            if not session.in_transaction():
                session.begin()
            yield session
            session.flush()  # rows the ORM inserts (new jobs) come before their events
            self.changes.write(session)
            write_events(session)
            session.commit()
        except BaseException:
            self.changes.clear()
            session.rollback()
            raise
        else:
            for row in session.info.pop(ENDED, ()):
                if row in session:
                    session.expunge(row)
            for job_id in session.info.pop(ADMITTED, ()):
                self.workdirs.expect(job_id)
        finally:
            session.info.pop(EVENTS, None)
            session.info.pop(ENDED, None)
            session.info.pop(ADMITTED, None)

    # -- the thread --------------------------------------------------------------
    def launch_spec(
        self, row: JobRow, attempt: int, replica: int, allocation: Allocation
    ) -> LaunchSpec:
        """What replica ``replica`` of ``row``'s attempt ``attempt`` is launched with."""
        queue = self.queue_rows.get(row.queue)
        uid = queue.uid if queue is not None else None
        return self.launching.spec(row, attempt, replica, allocation, uid)

    def start(self) -> None:
        self.workdirs.start()
        self.recover()
        learn_from_history(self.db, self.policy)
        self.launcher.start()
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        while True:
            try:
                _, future = self._inbox.get_nowait()
            except Empty:
                break
            future.cancel()
        self.launcher.stop()
        self.workdirs.stop()
        self.session.close()

    def wake(self) -> None:
        self._loop.wake()

    def view(self) -> ClusterView:
        """A frozen snapshot of the loop's state, for readers on any thread.

        The API asks on every submission, so the usual answer takes no lock: the last
        snapshot, when the state's versions still match those it was taken at. A
        version read mid-change either already moved (the lock is taken, and waits for
        the change to end) or not yet (the last snapshot, consistent, a moment old)."""
        cached = self._view
        if cached is None or cached[0] != self._view_key():
            with self._lock:
                key = self._view_key()
                cached = self._view
                if cached is None or cached[0] != key:
                    view = take_view(
                        self.state,
                        {name: row.uid for name, row in self.queue_rows.items()},
                        self.policy.name,
                        self.elastic,
                    )
                    self._view = cached = (key, view)
        return cached[1].at_cycle(self.stats.cycles, self.stats.last_duration)

    def _view_key(self) -> tuple[object, ...]:
        state = self.state
        return (
            state.alloc_version,
            state.node_version,
            state.queue_version,
            self.policy.name,
            self.elastic,
        )

    def node_joined(self, node: Node) -> bool:
        """Adds ``node`` to the cluster unless it is known; on the loop's thread (in
        :meth:`call`). Whether it was new."""
        if node.name in self.state.nodes:
            return False
        self.state.add_node(node)
        return True

    def node_left(self, name: str) -> bool:
        """Removes node ``name`` from the cluster; on the loop's thread (in
        :meth:`call`). Whether it was known."""
        if name not in self.state.nodes:
            return False
        self.state.remove_node(name)
        return True

    def call(self, work: Callable[[Session, float], T]) -> Future[T]:
        """Runs ``work(session, now)`` on the loop's thread in one transaction, then a
        scheduling step; the future holds its result or its exception."""
        future: Future[T] = Future()
        self._inbox.put((work, future))
        self._loop.wake()
        return future

    def _pass(self) -> None:
        if not self._loop.stopping:
            self.step()

    # -- one step ----------------------------------------------------------------
    def step(self) -> CycleResult:
        """Takes in requests and exits, runs one scheduling cycle and carries it out."""
        now = self.clock()
        with self._lock:
            self._take_requests(now)
            exits = self.executor.poll() + self.launcher.failures()
            with self.transaction() as session:
                self._take_exits(session, exits, now)
                self._release_backoff(session, now)
                learner = self.policy.learner
                if learner is not None and learner.generation != self._generation:
                    self._generation = learner.generation
                    self.state.reorder(self.policy.order_key)  # what it learned moves them
                started = time.perf_counter()
                result = cycle(self.state, now, self.policy)
                self.stats.last_duration = time.perf_counter() - started
                self.stats.cycles += 1
                launches = self._apply(session, result, now)
        self.launcher.submit(launches)
        for observer in self.stats.observers:
            observer(now, self.stats.last_duration, result)
        return result

    def _take_requests(self, now: float) -> None:
        while True:
            try:
                work, future = self._inbox.get_nowait()
            except Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                with self.transaction() as session:
                    value = work(session, now)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(value)

    # -- requests from the API (run on the loop's thread) --------------------------
    def admit(self, session: Session, row: JobRow, now: float) -> None:
        """Records a new job (already added to ``session``) and queues it."""
        if row.id is None:
            session.flush()
        self.rows[row.id] = row
        self.expect_workdir(session, row.id)
        record(session, now, "submitted", f"job {row.id} submitted to queue {row.queue}", row.id)
        self.state.submit(scheduler_job(row))

    def cancel(self, session: Session, row: JobRow, now: float) -> None:
        """Cancels ``row``: at once when it waits, by SIGTERM when it runs."""
        job_id = str(row.id)
        if row.state == QUEUED:
            self._backoff = [(t, j) for t, j in self._backoff if j != row.id]
            heapq.heapify(self._backoff)
            self.state.finish(job_id, JobState.CANCELLED)
            self._end_job(session, row, JobState.CANCELLED, now, "cancelled while queued")
            return
        attempt = self.attempts.get(row.id)
        if row.state == JobState.RUNNING and attempt is not None:
            self._stop(session, row, attempt, StopReason.CANCELLED, now, "cancel requested")

    def set_queue(self, row: QueueRow) -> None:
        with self._lock:
            self.queue_rows[row.name] = row
            self.state.set_queue(queue_from_row(row))

    def set_policy(self, policy: Policy) -> str:
        """Schedules with ``policy`` from the next cycle on and returns the previous
        policy's name. Runs on the loop's thread (in :meth:`call`) or before
        :meth:`start`: the pending jobs are re-sorted for the new queue order, and jobs
        already running keep their places. Raises InvalidInput for a clairvoyant policy
        (one that needs true durations), as the constructor does."""
        check_live(policy)
        learn_from_history(self.db, policy)
        with self._lock:
            previous = self.policy.name
            self.policy = policy
            self.state.reorder(policy.order_key)
        return previous

    # -- exits --------------------------------------------------------------------
    def _take_exits(self, session: Session, exits: list[ProcessExit], now: float) -> None:
        for exit_ in exits:
            attempt = self.attempts.get(int(exit_.job_id))
            if attempt is None or attempt.number != exit_.attempt:
                continue
            attempt.exits[exit_.replica] = exit_
            row = session.get(JobRow, attempt.job_id)
            if row is None:
                continue
            failed = exit_.reason is not ExitReason.SUCCEEDED
            if failed and attempt.stopping is None and len(attempt.exits) < attempt.replicas:
                # One replica of a gang failed: the others cannot go on alone.
                self._stop(session, row, attempt, StopReason.CANCELLED, now, "a replica failed")
                attempt.stopping = None
                attempt.abandoned = True
            if len(attempt.exits) == attempt.replicas:
                self.end_attempt(session, row, attempt, now)

    def end_attempt(self, session: Session, row: JobRow, attempt: Attempt, now: float) -> None:
        del self.attempts[row.id]
        outcome = attempt.outcome()
        self.changes.attempt(
            attempt.record,
            finished_at=now,
            exit_code=outcome.exit_code,
            reason=outcome.reason.value,
            message=outcome.message,
        )
        session.info.setdefault(ENDED, []).append(attempt.record)
        self.changes.job(row, exit_code=outcome.exit_code, reason=outcome.reason.value)
        job_id = str(row.id)
        running = self.state.running.get(job_id)
        if running is not None:
            self.changes.job(row, attained_service=running.attained(now))
        code = "" if outcome.exit_code is None else f" (exit code {outcome.exit_code})"
        record(
            session,
            now,
            "exited",
            f"attempt {attempt.number} {outcome.reason.value}{code}",
            row.id,
            attempt=attempt.number,
            reason=outcome.reason.value,
            exit_code=outcome.exit_code,
        )
        if outcome.reason is ExitReason.SUCCEEDED:
            self.state.finish(job_id, JobState.SUCCEEDED)
            self._end_job(session, row, JobState.SUCCEEDED, now, "succeeded")
        elif outcome.reason is ExitReason.CANCELLED:
            self.state.finish(job_id, JobState.CANCELLED)
            self._end_job(session, row, JobState.CANCELLED, now, "cancelled")
        elif outcome.reason is ExitReason.PREEMPTED:
            self.state.requeue(job_id, now, preemptor=attempt.preemptor)
            self.changes.job(
                row,
                state=QUEUED,
                queued_at=now,
                started_at=None,
                message="preempted; back in its queue",
            )
            record(session, now, "requeued", f"job {row.id} preempted and requeued", row.id)
        elif row.retries < row.max_retries:
            retries = row.retries + 1
            delay = min(row.retry_backoff * 2 ** (retries - 1), MAX_BACKOFF)
            self.state.release(job_id)
            self.changes.job(
                row,
                retries=retries,
                state=QUEUED,
                queued_at=now + delay,
                started_at=None,
                retry_at=now + delay,
                message=f"{outcome.reason.value}; retry {retries} of {row.max_retries}",
            )
            self.retry_later(row.id, now + delay)
            record(session, now, "retrying", f"{row.message} in {delay:g} s", row.id, delay=delay)
        else:
            self.state.finish(job_id, JobState.FAILED)
            message = outcome.message or f"attempt {attempt.number} {outcome.reason.value}{code}"
            self._end_job(session, row, JobState.FAILED, now, message)

    def _end_job(
        self, session: Session, row: JobRow, state: JobState, now: float, message: str
    ) -> None:
        if has_data(row):
            result = record_lineage(session, control_dir(self.home, row.id), row)
            if result is not None and result.cached_from is not None:
                message = f"{message}: reused the outputs of job {result.cached_from}"
        if state is JobState.SUCCEEDED:
            learn_from_job(self.policy, row, now)
        self.changes.job(row, state=state.value, finished_at=now, message=message)
        session.info.setdefault(ENDED, []).append(row)
        self.rows.pop(row.id, None)
        self._reasons.pop(row.id, None)
        record(session, now, state.value, f"job {row.id} {message}", row.id)

    def _release_backoff(self, session: Session, now: float) -> None:
        while self._backoff and self._backoff[0][0] <= now:
            _, job_id = heapq.heappop(self._backoff)
            row = session.get(JobRow, job_id)
            if row is None or row.state != QUEUED:
                continue
            self.changes.job(row, retry_at=None)
            self.state.submit(scheduler_job(row))

    # -- decisions ----------------------------------------------------------------
    def _apply(self, session: Session, result: CycleResult, now: float) -> list[Launch]:
        launches: list[Launch] = []
        for decision in result.decisions:
            if isinstance(decision, Bind):
                launches.append(self._bind(session, decision, now))
            elif isinstance(decision, Preempt):
                self._preempt(session, decision, now)
            elif isinstance(decision, Unschedulable | UpstreamFailed):
                row = session.get(JobRow, int(decision.job_id))
                if row is None:
                    continue
                if isinstance(decision, Unschedulable) and self.elastic:
                    result.reasons[decision.job_id] = f"waits for a node to join: {decision.reason}"
                    continue
                if isinstance(decision, Unschedulable):
                    state, why = JobState.UNSCHEDULABLE, decision.reason
                else:
                    state, why = (
                        JobState.UPSTREAM_FAILED,
                        f"dependency {decision.parent} failed",
                    )
                self.state.finish(decision.job_id, state)
                self._end_job(session, row, state, now, why)
        for job_id, reason in result.reasons.items():
            key = int(job_id)
            if self._reasons.get(key) != reason and job_id in self.state.pending:
                self._reasons[key] = reason
                row = session.get(JobRow, key)
                if row is not None and row.state == QUEUED:
                    self.changes.job(row, message=reason)
        return launches

    def _bind(self, session: Session, decision: Bind, now: float) -> Launch:
        job = decision.job
        row = session.get(JobRow, int(job.id))
        assert row is not None, f"bound job {job.id} has no row"
        self.state.bind(job, decision.allocations, now)
        self.changes.job(
            row, attempts=row.attempts + 1, state=JobState.RUNNING.value, started_at=now, message=""
        )
        self._reasons.pop(row.id, None)
        attempt_row = self.changes.new_attempt(
            job_id=row.id,
            number=row.attempts,
            allocations=[allocation_to_json(a) for a in decision.allocations],
            handles=[],
            started_at=now,
            message="",
        )
        where = ", ".join(
            f"{a.node} cores {list(a.cores)}" + (f" gpus {list(a.gpus)}" if a.gpus else "")
            for a in decision.allocations
        )
        record(
            session,
            now,
            "scheduled",
            f"attempt {row.attempts} on {where}",
            row.id,
            attempt=row.attempts,
            backfilled=decision.backfilled,
        )
        attempt = Attempt(row.id, row.attempts, attempt_row, replicas=len(decision.allocations))
        self.attempts[row.id] = attempt
        specs = [
            self.launch_spec(row, attempt.number, replica, allocation)
            for replica, allocation in enumerate(decision.allocations)
        ]
        return Launch(row.id, row, attempt, specs, row.grace)

    def _preempt(self, session: Session, decision: Preempt, now: float) -> None:
        victim = decision.victim.job
        row = session.get(JobRow, int(victim.id))
        attempt = self.attempts.get(int(victim.id))
        if row is None or attempt is None:
            return
        self.state.preempting_for(victim.id, decision.preemptor, now)
        attempt.preemptor = decision.preemptor
        self._stop(
            session,
            row,
            attempt,
            StopReason.PREEMPTED,
            now,
            f"preempted for job {decision.preemptor}: {decision.reason}",
        )

    def _stop(
        self,
        session: Session,
        row: JobRow,
        attempt: Attempt,
        reason: StopReason,
        now: float,
        message: str,
    ) -> None:
        if attempt.stopping is None:
            attempt.stopping = reason
            self.changes.attempt(attempt.record, stopping=reason.value)
            record(
                session, now, "stopping", f"job {row.id}: {message}", row.id, reason=reason.value
            )
        for replica, handle in attempt.handles.items():
            if replica not in attempt.exits:
                self.executor.stop(handle, reason, row.grace)

    # -- restart ------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuilds the scheduler's state from the database and adopts the processes
        that outlived the previous control plane (:mod:`~aios.control.recovery`)."""
        recover(self)

    def expect_workdir(self, session: Session, job_id: int) -> None:
        """Asks for job ``job_id``'s directory once ``session`` commits (made ahead, off
        the loop, by :class:`~aios.control.workdirs.Workdirs`)."""
        session.info.setdefault(ADMITTED, []).append(job_id)

    def retry_later(self, job_id: int, when: float) -> None:
        """Puts a queued job back before the scheduler at ``when`` (its retry backoff)."""
        heapq.heappush(self._backoff, (when, job_id))
