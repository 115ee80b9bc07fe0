"""The control plane's operations: what the API (and tests) call. Jobs
(:mod:`aios.control.job_ops`), pipelines (:mod:`aios.control.pipeline_ops`), and here
queues and nodes.

Reads use their own database session; every change runs on the reconcile loop's thread
(:meth:`Reconciler.call`) in one transaction with its event row, so nothing races the
scheduler and a rejected request leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aios.control.auth import Principal
from aios.control.events import record
from aios.control.job_ops import JobFilter
from aios.control.pipeline_ops import PipelineOps
from aios.control.reconciler import QUEUED
from aios.control.specs import GpuView, NodeView, QueueSpec, QueueUpdate, QueueView, resource_amount
from aios.control.tenants import next_uid
from aios.errors import Conflict, InvalidInput, NotFound
from aios.resources import Resources
from aios.store import JobRow, QueueRow

__all__ = ["ControlOps", "JobFilter"]


class ControlOps(PipelineOps):
    """Jobs, queues, nodes and pipelines, with the caller's rights checked."""

    def _check_resource_names(self, **amounts: dict[str, Any] | None) -> None:
        """Refuses a quota naming a resource no node has (``gpus`` for ``gpu``): it would
        silently limit nothing."""
        custom = {
            name
            for load in self.reconciler.view().nodes
            for name, _ in load.node.allocatable.custom
        }
        known = {"cpu", "memory", "gpu"} | custom
        for field, values in amounts.items():
            for resource in values or {}:
                if resource not in known:
                    raise InvalidInput(
                        f"{field}: no node has a resource named {resource!r} "
                        f"(known: {', '.join(sorted(known))})"
                    )

    def create_queue(self, user: Principal, spec: QueueSpec) -> QueueView:
        user.require_admin("create queues")
        self._check_resource_names(quota=spec.quota, borrowing_limit=spec.borrowing_limit)

        def work(session: Session, now: float) -> QueueView:
            if session.get(QueueRow, spec.name) is not None:
                raise Conflict(f"queue {spec.name!r} already exists")
            row = QueueRow(
                name=spec.name,
                nominal=_amounts(spec.quota),
                weight=spec.weight,
                cohort=spec.cohort,
                borrowing_limit=_amounts(spec.borrowing_limit) or {},
                created_at=now,
                uid=next_uid(session),
            )
            session.add(row)
            record(session, now, "queue_created", f"queue {spec.name} created")
            self.reconciler.set_queue(row)
            return self._queue_view(session, row)

        return self._change(work)

    def update_queue(self, user: Principal, name: str, update: QueueUpdate) -> QueueView:
        user.require_admin("change queues")
        self._check_resource_names(quota=update.quota, borrowing_limit=update.borrowing_limit)

        def work(session: Session, now: float) -> QueueView:
            row = session.get(QueueRow, name)
            if row is None:
                raise NotFound(f"no queue {name!r}")
            fields = update.model_fields_set
            if "quota" in fields:
                row.nominal = _amounts(update.quota)
            if update.weight is not None:
                row.weight = update.weight
            if "cohort" in fields:
                row.cohort = update.cohort
            if update.borrowing_limit is not None:
                row.borrowing_limit = _amounts(update.borrowing_limit) or {}
            record(session, now, "queue_updated", f"queue {name} updated: {sorted(fields)}")
            self.reconciler.set_queue(row)
            return self._queue_view(session, row)

        return self._change(work)

    def _queue_view(self, session: Session, row: QueueRow) -> QueueView:
        counts = dict(
            session.execute(
                select(JobRow.state, func.count())
                .where(JobRow.queue == row.name, JobRow.state.in_((QUEUED, "running")))
                .group_by(JobRow.state)
            ).all()
        )
        usage = dict(self.reconciler.view().usage.get(row.name, {}))
        return QueueView(
            name=row.name,
            quota=row.nominal,
            weight=row.weight,
            cohort=row.cohort,
            borrowing_limit=row.borrowing_limit or {},
            usage={k: int(v) for k, v in usage.items()},
            pending=int(counts.get(QUEUED, 0)),
            running=int(counts.get("running", 0)),
        )

    def queues(self, user: Principal) -> list[QueueView]:
        with self.db.sessions() as session:
            rows = session.scalars(select(QueueRow).order_by(QueueRow.name)).all()
            return [self._queue_view(session, r) for r in rows if user.may_see(r.name)]

    # -- nodes ----------------------------------------------------------------------
    def nodes(self) -> list[NodeView]:
        view = self.reconciler.view()
        return [
            NodeView(
                name=load.node.name,
                capacity=_plain(load.node.capacity),
                allocatable=_plain(load.node.allocatable),
                allocated=_plain(load.allocated),
                free=_plain(load.node.allocatable - load.allocated),
                gpus=[
                    GpuView(
                        index=d.index,
                        model=d.model,
                        memory=d.memory,
                        job_id=view.gpu_holders.get((load.node.name, d.index)),
                    )
                    for d in load.node.gpus
                ],
                labels=dict(load.node.labels),
            )
            for load in view.nodes
        ]


def _amounts(amounts: dict[str, Any] | None) -> dict[str, int] | None:
    if amounts is None:
        return None
    return {resource: resource_amount(resource, value) for resource, value in amounts.items()}


def _plain(resources: Resources) -> dict[str, int]:
    values = {"cpu": resources.cpu, "memory": resources.memory, "gpu": resources.gpus}
    values.update(dict(resources.custom))
    return values
