"""The control plane's operations on pipelines: a DAG of steps submitted as jobs in one
transaction, read and cancelled as one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.control.auth import Principal
from aios.control.events import record
from aios.control.idempotency import Idempotency, once
from aios.control.job_ops import TERMINAL, JobOps, function_payload
from aios.control.pipelines import pipeline_state, topological_order
from aios.control.specs import JobSpec, PipelineSpec, PipelineView
from aios.control.views import job_view
from aios.errors import InvalidInput, NotFound
from aios.store import JobRow, PipelineRow

__all__ = ["PipelineOps"]


class PipelineOps(JobOps):
    """Pipelines, with the caller's rights checked: each step is a job of :class:`JobOps`."""

    def submit_pipeline(
        self, user: Principal, spec: PipelineSpec, idempotency: Idempotency | None = None
    ) -> PipelineView:
        if (recorded := self._recorded(user, idempotency)) is not None:
            return PipelineView.model_validate(recorded)
        order = topological_order({name: step.needs for name, step in spec.steps.items()})
        queue = spec.queue or user.tenant or "default"
        payloads = {}
        produced = {output for step in spec.steps.values() for output in step.outputs}
        for name, step in spec.steps.items():
            if step.after:
                raise InvalidInput(f"steps.{name}.after: use needs: inside a pipeline")
            self._check_fits(step, f"steps.{name}: ")
            self._check_image(user, step, f"steps.{name}.")
            self._check_inputs(user, step, produced, f"steps.{name}.", in_pipeline=True)
            try:
                payloads[name] = function_payload(step)
            except InvalidInput as exc:
                raise InvalidInput(f"steps.{name}.{exc}") from None
        existing = self.datasets.existing(produced)

        def work(session: Session, now: float) -> PipelineView:
            def create() -> PipelineView:
                # The pipeline's own queue decides who sees it and may cancel it: the same
                # checks as a job's, even when every step names a queue of its own.
                if queue not in self.reconciler.view().queue_uids:
                    raise InvalidInput(f"queue: no queue named {queue!r}")
                user.check_queue(queue)
                pipeline = PipelineRow(
                    name=spec.name,
                    queue=queue,
                    owner=user.name,
                    spec=spec.model_dump(mode="json", exclude_unset=True),
                    created_at=now,
                )
                session.add(pipeline)
                session.flush()
                ids: dict[str, int] = {}
                rows = []
                for name in order:
                    step = spec.steps[name]
                    job_spec = JobSpec.model_validate(
                        step.model_dump(exclude={"needs"}, exclude_unset=True)
                        | {"name": step.name or name, "after": [ids[n] for n in step.needs]}
                    )
                    row = self._new_row(session, user, job_spec, now, step.queue or queue)
                    row.pipeline_id, row.step = pipeline.id, name
                    self._claim_outputs(session, user, row, existing, f"steps.{name}.", now)
                    session.flush()  # the steps that need this one name its id
                    ids[name] = row.id
                    rows.append(row)
                self._store_payloads(
                    [(row, payloads[name]) for row, name in zip(rows, order, strict=True)]
                )
                record(
                    session,
                    now,
                    "pipeline_submitted",
                    f"pipeline {pipeline.id} {spec.name}: {len(rows)} steps",
                )
                for row in rows:
                    self.reconciler.admit(session, row, now)
                return self._pipeline_view(pipeline, rows)

            def dump(view: PipelineView) -> Any:
                return view.model_dump(mode="json")

            return once(
                session, user.name, idempotency, now, create, dump, PipelineView.model_validate
            )

        return self._change(work)

    def _pipeline_view(
        self, pipeline: PipelineRow, rows: Sequence[JobRow], user: Principal | None = None
    ) -> PipelineView:
        if user is not None:
            # An admin's pipeline may have steps in other queues: a tenant sees its own.
            rows = [row for row in rows if user.may_see(row.queue)]
        return PipelineView(
            id=pipeline.id,
            name=pipeline.name,
            queue=pipeline.queue,
            owner=pipeline.owner,
            state=pipeline_state([r.state for r in rows]),
            created_at=pipeline.created_at,
            steps={r.step or str(r.id): job_view(r) for r in rows},
        )

    def pipeline(self, user: Principal, pipeline_id: int) -> PipelineView:
        with self.db.sessions() as session:
            pipeline = session.get(PipelineRow, pipeline_id)
            if pipeline is None or not user.may_see(pipeline.queue):
                raise NotFound(f"no pipeline {pipeline_id}")
            rows = session.scalars(
                select(JobRow).where(JobRow.pipeline_id == pipeline_id).order_by(JobRow.id)
            ).all()
            return self._pipeline_view(pipeline, rows, user)

    def pipelines(self, user: Principal, limit: int = 100) -> list[PipelineView]:
        with self.db.sessions() as session:
            query = select(PipelineRow.id).order_by(PipelineRow.id.desc()).limit(limit)
            if not user.admin:
                query = query.where(PipelineRow.queue == user.tenant)
            ids = list(session.scalars(query))
        return [self.pipeline(user, pid) for pid in ids]

    def cancel_pipeline(self, user: Principal, pipeline_id: int) -> PipelineView:
        view = self.pipeline(user, pipeline_id)

        def work(session: Session, now: float) -> None:
            for step in view.steps.values():
                row = session.get(JobRow, step.id)
                if row is not None and row.state not in TERMINAL and user.may_see(row.queue):
                    self.reconciler.cancel(session, row, now)

        self._change(work)
        return self.pipeline(user, pipeline_id)
