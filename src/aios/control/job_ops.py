"""The control plane's operations on jobs: submit, read, cancel, logs and results.

Reads use their own database session; every change runs on the reconcile loop's thread
(:meth:`Reconciler.call`) in one transaction with its event row, so nothing races the
scheduler and a rejected request leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.control.auth import Principal
from aios.control.idempotency import Idempotency, once, recall
from aios.control.launching import data_plan, has_data
from aios.control.layout import FUNCTION_FILE, control_dir, job_dir, prepare_workdir
from aios.control.reconciler import QUEUED, Reconciler
from aios.control.specs import EventView, JobSpec, JobView
from aios.control.views import job_view, spec_of
from aios.data.datasets import parse_version
from aios.errors import Busy, Conflict, Forbidden, InvalidInput, NotFound
from aios.executors.images import ImageCache, parse_reference, readable_by
from aios.files import NotARegularFile, read_in
from aios.lineage.access import DatasetAccess
from aios.lineage.catalog import DataCatalog, default_location
from aios.resources import Resources, format_bytes
from aios.scheduler import TERMINAL_STATES
from aios.store import AttemptRow, Database, EventRow, JobRow

__all__ = ["JobFilter", "JobOps", "function_payload"]

T = TypeVar("T")
MAX_PAYLOAD = 1 << 30
"""The largest pickled function or result the control plane reads back."""
TERMINAL = frozenset(state.value for state in TERMINAL_STATES)


@dataclass(frozen=True, slots=True)
class JobFilter:
    state: str | None = None
    queue: str | None = None
    owner: str | None = None
    pipeline_id: int | None = None
    limit: int = 100
    offset: int = 0


class JobOps:
    """Jobs, with the caller's rights checked; the base of :class:`~aios.control.ops.ControlOps`."""

    def __init__(
        self, db: Database, reconciler: Reconciler, home: Path, data: DataCatalog | None = None
    ) -> None:
        self.db = db
        self.reconciler = reconciler
        self.home = home
        self.data = data or DataCatalog(default_location(home))
        self.datasets = DatasetAccess(db, self.data)
        self.images: ImageCache | None = None
        """Where jobs' images are unpacked; None when jobs run without a sandbox (an
        image needs one)."""

    def _change(self, work: Callable[[Session, float], T], timeout: float = 30.0) -> T:
        """Runs ``work`` on the loop; when the loop is too busy to start it within
        ``timeout``, it is withdrawn (never done later) and Busy is raised."""
        future: Future[T] = self.reconciler.call(work)
        try:
            return future.result(timeout)
        except FuturesTimeout:
            if future.cancel():
                raise Busy("the control plane is busy; nothing was changed, try again") from None
            return future.result()  # already running: its outcome is the answer

    # -- jobs -----------------------------------------------------------------------
    def _check_image(self, user: Principal, spec: JobSpec, where: str) -> None:
        """Refuses an image that is missing, is no image, or (the control plane running
        as root) that the job's queue could not read itself: the control plane reads it
        with its own rights, on the tenant's behalf. Unpacks it, once per digest."""
        if spec.image is None:
            return
        if self.images is None:
            raise InvalidInput(
                f"{where}image: jobs run without a sandbox here, and an image needs one"
            )
        uid = self.reconciler.view().queue_uids.get(spec.queue or user.tenant or "default")
        path, _ = parse_reference(spec.image)
        # As if absent: whether it exists is not the tenant's to learn.
        if os.geteuid() == 0 and not user.admin and uid is not None and not readable_by(path, uid):
            raise InvalidInput(f"{where}image {spec.image}: no such file or directory")
        try:
            self.images.prepare(spec.image)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}{exc}") from None

    def _check_fits(self, spec: JobSpec, where: str) -> None:
        request = Resources(
            spec.millicores, spec.memory_bytes, spec.gpus, spec.gpu_kind if spec.gpus else None
        )
        view = self.reconciler.view()
        nodes = [load.node for load in view.nodes]
        if view.elastic:
            return  # a node that can hold it may join later
        if not any(request.fits(node.allocatable) for node in nodes):
            largest = ", ".join(
                f"{n.name}: {n.allocatable.cpu // 1000} cpus, "
                f"{format_bytes(n.allocatable.memory)}B memory, "
                f"{n.allocatable.gpus} gpus" + (f" {n.allocatable.gpu_kind}" if n.gpus else "")
                for n in nodes[:3]
            )
            raise InvalidInput(f"{where}asks for more than any node has ({largest})")

    def _new_row(
        self,
        session: Session,
        user: Principal,
        spec: JobSpec,
        now: float,
        queue: str,
        mounts: Sequence[str] = (),
    ) -> JobRow:
        """Adds the job's row to ``session`` (unflushed: several rows are inserted by one
        flush) after checking its queue, rights and dependencies. ``mounts`` are host
        paths bound read-only into its sandbox: the control plane's own (a serving
        replica's model files), never a request's."""
        if queue not in self.reconciler.view().queue_uids:
            raise InvalidInput(f"queue: no queue named {queue!r}")
        user.check_queue(queue)
        if spec.as_admin and not user.admin:
            raise Forbidden("as_admin: only an admin's job may hold an admin's token")
        for parent in spec.after:
            parent_row = session.get(JobRow, parent)
            if parent_row is None or not user.may_see(parent_row.queue):
                raise InvalidInput(f"after: no job {parent}")
        if isinstance(spec.command, str):
            command, shell = [spec.command], True
        else:
            command, shell = list(spec.command or []), False
        row = JobRow(
            name=spec.name or (command[0].split()[0] if command else "function")[:128],
            owner=user.name,
            queue=queue,
            state=QUEUED,
            kind=spec.kind,
            command=command,
            shell=shell,
            env=dict(spec.env),
            cpu=spec.millicores,
            memory=spec.memory_bytes,
            gpus=spec.gpus,
            gpu_kind=spec.gpu_kind,
            replicas=spec.replicas,
            priority=spec.priority,
            preemptible=spec.preemptible,
            restore=spec.restore_seconds,
            checkpoint_every=spec.checkpoint_every_seconds,
            dependencies=list(spec.after),
            time_limit=spec.time_limit_seconds,
            grace=spec.grace,
            max_retries=spec.retries,
            retries=0,
            retry_backoff=spec.retry_backoff,
            submitted_at=now,
            queued_at=now,
            attained_service=0.0,
            attempts=0,
            message="",
            inputs=list(spec.inputs),
            outputs=list(spec.outputs),
            cache=spec.cache and spec.function is None,  # a function's value is not kept
            network=spec.network,
            image=spec.image,
            as_admin=spec.as_admin,
            mounts=list(mounts),
        )
        session.add(row)
        return row

    def _store_payloads(self, rows: Sequence[tuple[JobRow, bytes | None]]) -> None:
        """Writes the pickled function of each function job and the data plan of each
        job with dataset inputs or outputs (rows flushed: the directory is named by the
        id) into its directory; on an error, removes them."""
        written = [row for row, payload in rows if payload is not None or has_data(row)]
        try:
            for row, payload in rows:
                if payload is not None:
                    prepare_workdir(self.home, row.id)
                    (job_dir(self.home, row.id) / FUNCTION_FILE).write_bytes(payload)
                if has_data(row):  # the stage wrapper's plan: out of the job's reach
                    prepare_workdir(self.home, row.id)
                    run = control_dir(self.home, row.id)
                    run.mkdir(mode=0o700, parents=True, exist_ok=True)
                    data_plan(row, self.data.location).write(run)
        except BaseException:
            self._discard_payloads(written)
            raise

    def _check_inputs(
        self,
        user: Principal,
        spec: JobSpec,
        produced: set[str],
        where: str,
        *,
        in_pipeline: bool = False,
    ) -> None:
        """Refuses an input that names no version, or a dataset the caller may not read
        (in the same words: another tenant's dataset is not revealed), unless a job this
        one waits for publishes that dataset (then it is resolved when this job starts,
        and only the caller's right to read it is checked now). Inside a pipeline, a
        dataset that another step publishes is guarded by that step's output check
        (:meth:`_claim_outputs`). This check is the only one: the stage wrapper resolves
        the references again when the job starts, without the caller's rights, so a
        share revoked in between does not stop the job."""
        for ref in spec.inputs:
            name, _ = parse_version(ref)
            if name not in produced:
                self.datasets.resolve(user, ref, f"{where}inputs:")
            elif not in_pipeline:
                self.datasets.check_read(user, ref, f"{where}inputs:")

    def _claim_outputs(
        self,
        session: Session,
        user: Principal,
        row: JobRow,
        existing: frozenset[str],
        where: str,
        now: float,
    ) -> None:
        """In the submission's transaction: refuses an output the caller may not
        publish and makes each new one the job's queue's (see
        :mod:`aios.lineage.access`)."""
        if row.outputs:
            outputs = [str(name) for name in row.outputs]
            self.datasets.claim(session, user, row.queue, outputs, existing, where, now)

    def _produced_by(self, parents: Sequence[int]) -> set[str]:
        """The datasets that the jobs ``parents`` publish."""
        if not parents:
            return set()
        with self.db.sessions() as session:
            rows = session.scalars(select(JobRow.outputs).where(JobRow.id.in_(parents)))
            return {str(name) for outputs in rows for name in outputs or []}

    def _discard_payloads(self, rows: Sequence[JobRow]) -> None:
        """Removes the directories :meth:`_store_payloads` made for ``rows``, whose
        transaction is being rolled back: SQLite hands their ids out again, and the next
        job to get one must not find (and read) another's pickled function in its
        directory."""
        for row in rows:
            shutil.rmtree(job_dir(self.home, row.id), ignore_errors=True)
            shutil.rmtree(control_dir(self.home, row.id), ignore_errors=True)

    def _recorded(self, user: Principal, idempotency: Idempotency | None) -> Any | None:
        """The answer recorded for a submission sent again with its key, before any of
        its checks (which might now say otherwise), or None."""
        if idempotency is None:
            return None
        with self.db.sessions() as session:
            return recall(session, user.name, idempotency, time.time())

    def submit(
        self,
        user: Principal,
        spec: JobSpec,
        mounts: Sequence[str] = (),
        idempotency: Idempotency | None = None,
    ) -> JobView:
        """Queues a job and returns it; refuses one no node could ever hold. ``mounts``:
        see :meth:`_new_row`; ``idempotency``: see :mod:`aios.control.idempotency`."""
        if (recorded := self._recorded(user, idempotency)) is not None:
            return JobView.model_validate(recorded)
        queue = spec.queue or user.tenant or "default"
        self._check_fits(spec, "")
        self._check_image(user, spec, "")
        self._check_inputs(user, spec, self._produced_by(spec.after), "")
        existing = self.datasets.existing(spec.outputs)
        payload = function_payload(spec)

        def work(session: Session, now: float) -> JobView:
            def create() -> JobView:
                row = self._new_row(session, user, spec, now, queue, mounts)
                self._claim_outputs(session, user, row, existing, "", now)
                session.flush()
                self._store_payloads([(row, payload)])
                self.reconciler.admit(session, row, now)
                return job_view(row)

            return once(session, user.name, idempotency, now, create, _dump, JobView.model_validate)

        return self._change(work)

    def submit_many(
        self,
        user: Principal,
        specs: Sequence[JobSpec],
        idempotency: Idempotency | None = None,
    ) -> list[JobView]:
        """Queues several jobs in one transaction: all of them, or none when one is
        refused (its index is named)."""
        if (recorded := self._recorded(user, idempotency)) is not None:
            return _views(recorded)
        payloads = []
        for index, spec in enumerate(specs):
            self._check_fits(spec, f"jobs[{index}]: ")
            self._check_image(user, spec, f"jobs[{index}]: ")
            self._check_inputs(user, spec, self._produced_by(spec.after), f"jobs[{index}]: ")
            try:
                payloads.append(function_payload(spec))
            except InvalidInput as exc:
                raise InvalidInput(f"jobs[{index}]: {exc}") from None
        existing = self.datasets.existing(o for spec in specs for o in spec.outputs)

        def work(session: Session, now: float) -> list[JobView]:
            def create() -> list[JobView]:
                rows: list[JobRow] = []
                for index, spec in enumerate(specs):
                    queue = spec.queue or user.tenant or "default"
                    try:
                        rows.append(self._new_row(session, user, spec, now, queue))
                    except InvalidInput as exc:
                        raise InvalidInput(f"jobs[{index}]: {exc}") from None
                    where = f"jobs[{index}]: "
                    self._claim_outputs(session, user, rows[-1], existing, where, now)
                session.flush()  # one INSERT for the rows (those with outputs are in already)
                self._store_payloads(list(zip(rows, payloads, strict=True)))
                for row in rows:
                    self.reconciler.admit(session, row, now)
                return [job_view(row) for row in rows]

            def dump(views: list[JobView]) -> Any:
                return [_dump(view) for view in views]

            return once(session, user.name, idempotency, now, create, dump, _views)

        return self._change(work)

    def resubmit(self, user: Principal, job_id: int) -> JobView:
        """Submits job ``job_id`` again as a new job: its command or function, its
        environment, resources, queue, limits, retries and datasets, without its
        dependencies (they ran already). A serving replica is its deployment's to start."""
        with self.db.sessions() as session:
            row = self._visible_job(session, user, job_id)
        if row.kind != "batch":
            raise InvalidInput(f"job {job_id} is a {row.kind} job; its deployment starts those")
        spec = spec_of(row)
        if not row.command:
            # The job's own directory: whatever is there now is the job's to have put.
            try:
                payload = read_in(job_dir(self.home, job_id), FUNCTION_FILE, MAX_PAYLOAD)
            except FileNotFoundError:
                raise Conflict(f"job {job_id}'s function is gone with its directory") from None
            except NotARegularFile as exc:
                raise Conflict(f"job {job_id}'s function: {exc.strerror}") from None
            spec["function"] = base64.b64encode(payload).decode()
        return self.submit(user, JobSpec.model_validate(spec))

    def _visible_job(self, session: Session, user: Principal, job_id: int) -> JobRow:
        row = session.get(JobRow, job_id)
        if row is None or not user.may_see(row.queue):
            raise NotFound(f"no job {job_id}")
        return row

    def get(self, user: Principal, job_id: int) -> JobView:
        with self.db.sessions() as session:
            row = self._visible_job(session, user, job_id)
            attempts = session.scalars(
                select(AttemptRow).where(AttemptRow.job_id == job_id).order_by(AttemptRow.number)
            ).all()
            return job_view(row, attempts)

    def jobs(self, user: Principal, flt: JobFilter) -> list[JobView]:
        query = select(JobRow).order_by(JobRow.id.desc()).limit(flt.limit).offset(flt.offset)
        if not user.admin:
            query = query.where(JobRow.queue == user.tenant)
        if flt.state is not None:
            query = query.where(JobRow.state == flt.state)
        if flt.queue is not None:
            query = query.where(JobRow.queue == flt.queue)
        if flt.owner is not None:
            query = query.where(JobRow.owner == flt.owner)
        if flt.pipeline_id is not None:
            query = query.where(JobRow.pipeline_id == flt.pipeline_id)
        with self.db.sessions() as session:
            rows = list(session.scalars(query))
            numbers = {row.id: row.attempts for row in rows if row.attempts}
            current: dict[int, AttemptRow] = {}
            if numbers:
                latest = select(AttemptRow).where(AttemptRow.job_id.in_(list(numbers)))
                for attempt in session.scalars(latest):
                    if attempt.number == numbers[attempt.job_id]:
                        current[attempt.job_id] = attempt
            return [job_view(row, [current[row.id]] if row.id in current else []) for row in rows]

    def cancel(self, user: Principal, job_id: int) -> JobView:
        def work(session: Session, now: float) -> JobView:
            row = self._visible_job(session, user, job_id)
            if row.state in TERMINAL:
                raise Conflict(f"job {job_id} has already ended ({row.state})")
            self.reconciler.cancel(session, row, now)
            return job_view(row)

        return self._change(work)

    def events(self, user: Principal, job_id: int | None, since: int = 0) -> list[EventView]:
        with self.db.sessions() as session:
            query = select(EventRow).where(EventRow.id > since).order_by(EventRow.id).limit(1000)
            if job_id is not None:
                self._visible_job(session, user, job_id)
                query = query.where(EventRow.job_id == job_id)
            elif not user.admin:
                visible = select(JobRow.id).where(JobRow.queue == user.tenant)
                query = query.where(EventRow.job_id.in_(visible))
            return [
                EventView(id=e.id, time=e.time, job_id=e.job_id, kind=e.kind, message=e.message)
                for e in session.scalars(query)
            ]

    def log_file(self, user: Principal, job_id: int, stream: str, replica: int) -> Path:
        from aios.control.layout import log_path

        with self.db.sessions() as session:
            row = self._visible_job(session, user, job_id)
            if not 0 <= replica < row.replicas:
                raise InvalidInput(f"replica: job {job_id} has replicas 0..{row.replicas - 1}")
        return log_path(self.home, job_id, stream, replica)

    def result(self, user: Principal, job_id: int) -> bytes:
        """The pickled value a function job returned (from its own directory, where it
        could have left anything: a symlink or a FIFO there is refused, 409)."""
        from aios.control.function import RESULT_FILE

        with self.db.sessions() as session:
            row = self._visible_job(session, user, job_id)
            state = row.state
        missing = NotFound(
            f"job {job_id} has no result ({state}; only function jobs that succeeded do)"
        )
        if state != "succeeded":
            raise missing
        try:
            return read_in(job_dir(self.home, job_id), RESULT_FILE, MAX_PAYLOAD)
        except FileNotFoundError:
            raise missing from None
        except NotARegularFile as exc:
            raise Conflict(f"job {job_id}'s result: {exc.strerror}") from None

    def is_finished(self, job_id: int) -> bool:
        with self.db.sessions() as session:
            row = session.get(JobRow, job_id)
            return row is None or row.state in TERMINAL


def function_payload(spec: JobSpec) -> bytes | None:
    """The pickled function of a function job (None for a command); InvalidInput when
    it is not base64."""
    if spec.function is None:
        return None
    try:
        return base64.b64decode(spec.function, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("function: not base64") from None


def _dump(view: JobView) -> Any:
    return view.model_dump(mode="json")


def _views(recorded: Any) -> list[JobView]:
    return [JobView.model_validate(item) for item in recorded]
