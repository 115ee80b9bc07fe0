"""REST routes for the what-if replay and the live policy switch, under ``/api/v1``.

``GET /history/trace?since=SECONDS`` (admins) returns :class:`~aios.simulator.history.History`:
the jobs submitted in the window that ran and ended, with the nodes and queues as they
are now, so that ``aios simulate --from-history`` replays the cluster's own workload,
also against a remote control plane. ``GET /policy`` says which policy schedules now;
``PUT /policy`` (admins) switches it on the reconcile loop without a restart.

A switch is a ``policy_changed`` event whose data hold the new policy, the previous one
and the configured one (``Settings.policy``). The event log is the record, so there is
no table and no migration: :func:`restore_policy` reads the last such event at start
and keeps its policy when the configuration is still the one it was switched from; a
control plane started with another configured policy takes that one (the admin asked
for it since).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.control.deps import User
from aios.control.events import record
from aios.control.ops import ControlOps
from aios.control.reconciler import Reconciler
from aios.control.specs import Strict
from aios.errors import Busy, InvalidInput
from aios.scheduler import available_policies, make_live_policy, make_policy
from aios.simulator.history import (
    ENDED_STATES,
    FinishedJob,
    History,
    NodeCapacity,
    QueueShare,
)
from aios.store import Database, EventRow, JobRow, QueueRow

__all__ = [
    "POLICY_CHANGED",
    "PolicySpec",
    "PolicyView",
    "gather_history",
    "history_router",
    "restore_policy",
]

log = logging.getLogger("aios.control")

POLICY_CHANGED = "policy_changed"
"""The kind of the event a policy switch writes."""
DEFAULT_WINDOW = 7 * 86400.0
"""Seconds of history a trace covers when the caller names none: a week."""
MAX_JOBS = 1_000_000

Since = Annotated[
    float, Query(gt=0, le=100 * 365 * 86400.0, description="seconds of history, back from now")
]
Limit = Annotated[int, Query(ge=1, le=MAX_JOBS, description="the most recent jobs kept")]


class PolicySpec(Strict):
    """The body of ``PUT /policy``: a policy spec such as ``las`` or ``fifo+backfill``."""

    policy: str = Field(min_length=1, max_length=200)


class PolicyView(BaseModel):
    """The policy scheduling now, the one the configuration names, and the choices."""

    policy: str
    configured: str
    choices: list[str]


def history_router(ops: ControlOps, configured: str) -> APIRouter:
    """The history and policy routes over ``ops``; ``configured`` is ``Settings.policy``
    (recorded with each switch, see :func:`restore_policy`)."""
    router = APIRouter(tags=["history"])
    configured = make_policy(configured).name

    def view() -> PolicyView:
        return PolicyView(
            policy=ops.reconciler.view().policy,
            configured=configured,
            choices=available_policies(live=True),
        )

    @router.get("/history/trace", response_model=History)
    def history_trace(user: User, since: Since = DEFAULT_WINDOW, limit: Limit = 100_000) -> History:
        """The finished jobs of the last ``since`` seconds (the most recent ``limit``),
        with the current nodes and queues: what a what-if replay needs."""
        user.require_admin("read the cluster's history")
        return gather_history(ops, since, limit)

    @router.get("/policy", response_model=PolicyView)
    def get_policy(user: User) -> PolicyView:
        return view()

    @router.put("/policy", response_model=PolicyView)
    def set_policy(spec: PolicySpec, user: User) -> PolicyView:
        """Switches the live scheduling policy; the next cycle runs under it."""
        user.require_admin("change the scheduling policy")
        try:
            policy = make_live_policy(spec.policy)
        except InvalidInput as exc:
            raise InvalidInput(f"policy: {exc}") from None

        def work(session: Session, now: float) -> None:
            previous = ops.reconciler.set_policy(policy)
            record(
                session,
                now,
                POLICY_CHANGED,
                f"scheduling policy changed from {previous} to {policy.name} by {user.name}",
                policy=policy.name,
                previous=previous,
                configured=configured,
            )

        future = ops.reconciler.call(work)
        try:
            future.result(30.0)
        except FuturesTimeout:
            if future.cancel():
                raise Busy("the control plane is busy; the policy was not changed") from None
            future.result()  # already running: its outcome is the answer
        return view()

    return router


def gather_history(ops: ControlOps, since: float, limit: int, now: float | None = None) -> History:
    """Reads the batch jobs submitted in the last ``since`` seconds (before ``now``,
    default the wall clock) that started and ended, the most recent ``limit`` of them in
    submit order, and the nodes and queues as they are now."""
    until = time.time() if now is None else now
    start = until - since
    query = (
        select(
            JobRow.id,
            JobRow.queue,
            JobRow.state,
            JobRow.submitted_at,
            JobRow.started_at,
            JobRow.finished_at,
            JobRow.cpu,
            JobRow.memory,
            JobRow.gpus,
            JobRow.replicas,
            JobRow.name,
            JobRow.restore,
            JobRow.checkpoint_every,
        )
        .where(
            JobRow.state.in_(ENDED_STATES),
            JobRow.kind == "batch",
            JobRow.submitted_at >= start,
            JobRow.submitted_at <= until,
            JobRow.started_at.is_not(None),
            JobRow.finished_at.is_not(None),
        )
        .order_by(JobRow.submitted_at.desc(), JobRow.id.desc())
        .limit(limit)
    )
    with ops.db.sessions() as session:
        rows = session.execute(query).all()
        queues = [
            QueueShare(row.name, _quota(row.nominal), row.weight, row.cohort)
            for row in session.scalars(select(QueueRow).order_by(QueueRow.name))
        ]
    jobs = [
        FinishedJob(
            id=row.id,
            queue=row.queue,
            state=row.state,
            submitted_at=row.submitted_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            cpu=row.cpu,
            memory=row.memory,
            gpus=row.gpus,
            replicas=row.replicas,
            name=row.name,
            restore=row.restore,
            checkpoint_every=row.checkpoint_every,
        )
        for row in reversed(rows)
    ]
    nodes = [
        NodeCapacity(
            load.node.name,
            load.node.allocatable.cpu,
            load.node.allocatable.memory,
            load.node.allocatable.gpus,
            load.node.allocatable.gpu_kind,
        )
        for load in ops.reconciler.view().nodes
    ]
    return History(start, until, jobs, nodes, queues)


def restore_policy(db: Database, reconciler: Reconciler, configured: str) -> str | None:
    """Puts back the policy of the last switch when the control plane is configured as
    it was then; call before the reconcile loop starts. Returns the policy restored, or
    None when the configured one stands (no switch, another configuration since, or a
    policy this version no longer knows, which is logged)."""
    configured = make_policy(configured).name
    with db.sessions() as session:
        event = session.scalars(
            select(EventRow)
            .where(EventRow.kind == POLICY_CHANGED)
            .order_by(EventRow.id.desc())
            .limit(1)
        ).first()
        data = dict(event.data) if event is not None else {}
    if data.get("configured") != configured or not isinstance(data.get("policy"), str):
        return None
    try:
        policy = make_live_policy(data["policy"])
    except InvalidInput as exc:
        log.warning(
            "keeping the configured policy %s: the last switch is unusable: %s", configured, exc
        )
        return None
    reconciler.set_policy(policy)
    log.info("scheduling policy %s, as switched before the restart", policy.name)
    return policy.name


def _quota(nominal: dict[str, Any] | None) -> dict[str, int] | None:
    if nominal is None:
        return None
    return {resource: int(amount) for resource, amount in nominal.items()}
