"""Restart: the reconcile loop's state rebuilt from the database.

Queues and queued jobs go back to the scheduler (a job in its retry backoff waits out
the rest of it); a running job's attempt is rebuilt from its row, and each of its
replicas is adopted from the handle recorded at launch, or found by the environment it
was started with when the control plane stopped between committing the binding and
recording the launch. A job with no process at all was never started: it is queued
again, with an event saying so. Replicas that cannot be found are lost, and an attempt
with every replica ended is ended as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.control.attempts import Attempt
from aios.control.codecs import (
    allocation_from_json,
    handle_from_json,
    handle_to_json,
    scheduler_job,
)
from aios.control.events import record
from aios.control.rows import QUEUED
from aios.control.tenants import next_uid
from aios.executors.base import ExitReason, ProcessExit, StopReason
from aios.scheduler import TERMINAL_STATES, JobState
from aios.store import AttemptRow, JobRow, QueueRow

if TYPE_CHECKING:
    from aios.control.reconciler import Reconciler

__all__ = ["recover"]


def recover(loop: Reconciler) -> None:
    """Rebuilds ``loop``'s scheduler state from the database and adopts the processes
    that outlived the previous control plane."""
    now = loop.clock()
    with loop.transaction() as session:
        if session.get(QueueRow, "default") is None:
            session.add(
                QueueRow(
                    name="default",
                    nominal=None,
                    weight=1.0,
                    cohort=None,
                    borrowing_limit={},
                    created_at=now,
                    uid=next_uid(session),
                )
            )
            session.flush()
        for queue_row in session.scalars(select(QueueRow)):
            loop.set_queue(queue_row)
        live = list(session.scalars(select(JobRow).where(JobRow.state.in_((QUEUED, "running")))))
        parents = {p for row in live for p in row.dependencies}
        for parent in session.scalars(select(JobRow).where(JobRow.id.in_(parents))):
            if parent.state in {s.value for s in TERMINAL_STATES}:
                loop.state.finished[str(parent.id)] = JobState(parent.state)
        for row in live:
            loop.rows[row.id] = row
            if row.state == QUEUED:
                loop.expect_workdir(session, row.id)
                if row.retry_at is not None and row.retry_at > now:
                    loop.retry_later(row.id, row.retry_at)
                else:
                    loop.state.submit(scheduler_job(row))
            else:
                _recover_running(loop, session, row, now)


def _recover_running(loop: Reconciler, session: Session, row: JobRow, now: float) -> None:
    attempt_row = session.get(AttemptRow, (row.id, row.attempts))
    allocations = (
        [] if attempt_row is None else [allocation_from_json(a) for a in attempt_row.allocations]
    )
    specs = [
        loop.launch_spec(row, row.attempts, replica, allocation)
        for replica, allocation in enumerate(allocations)
    ]
    handles = (
        {}
        if attempt_row is None
        else {h.replica: h for h in map(handle_from_json, attempt_row.handles)}
    )
    for replica, spec in enumerate(specs):
        if replica not in handles:
            # Committed but not recorded as launched: the executor looks for a
            # process started with this job's environment; if none, it never ran.
            found = loop.executor.find(spec)
            if found is not None:
                handles[replica] = found
    if attempt_row is None or not handles:
        if attempt_row is not None:
            session.delete(attempt_row)
        loop.changes.job(
            row, attempts=max(row.attempts - 1, 0), state=QUEUED, queued_at=now, started_at=None
        )
        record(
            session,
            now,
            "requeued",
            f"job {row.id} was scheduled but never started before a restart",
            row.id,
        )
        loop.state.submit(scheduler_job(row))
        return
    loop.state.bind(scheduler_job(row), allocations, attempt_row.started_at)
    attempt = Attempt(row.id, attempt_row.number, attempt_row, replicas=len(allocations))
    if attempt_row.stopping is not None:
        attempt.stopping = StopReason(attempt_row.stopping)
    loop.attempts[row.id] = attempt
    for replica, spec in enumerate(specs):
        handle = handles.get(replica)
        if handle is None:
            attempt.exits[replica] = ProcessExit(
                str(row.id),
                attempt.number,
                replica,
                None,
                ExitReason.LOST,
                "the control plane stopped before this replica was started",
            )
            continue
        attempt.handles[replica] = handle
        alive = loop.executor.adopt(handle, spec)
        state = "still running, adopted" if alive else "ended while the control plane was down"
        record(
            session,
            now,
            "adopted" if alive else "found_ended",
            f"replica {replica} of attempt {attempt.number}: process {handle.pid} {state}",
            row.id,
        )
    handles_json = [handle_to_json(h) for h in attempt.handles.values()]
    loop.changes.attempt(attempt_row, handles=handles_json)
    if len(attempt.exits) == attempt.replicas:
        loop.end_attempt(session, row, attempt, now)
