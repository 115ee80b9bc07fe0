"""The model registry's operations: what the API, and the deployment code, call.

Model names are unique across the registry, so ``NAME@VERSION`` names one artifact
wherever it is used (a deployment, ``in_use``); each model belongs to one tenant, whose
members see it and act on it, and an admin sees all. A caller of another tenant is told
that a model does not exist (404 on every route, as for a name no one holds).

Registering a new model under a name another tenant holds cannot succeed (names are
global), so its refusal cannot help telling that the name is not free: the one bit a
global namespace leaks (as S3's bucket names do; per-tenant names would need names
unique per tenant in the schema). It tells nothing more: not that a model holds it,
whose, or anything of it. It is the 409 "model name 'NAME' is not available; choose
another" (:func:`~aios.registry.specs.name_unavailable`), word for word the refusal of
a name reserved for the system (``aios-…``), given at the same step, before the upload
is read and before lineage or the tenant are checked, so no other answer tells the two
apart.

A registration stages the upload, loads the model in a child process (its signature,
or the loader's reason it does not load), and only then moves the blobs into the store
and writes the version, its alias and an event row in one transaction: a refused
registration leaves nothing behind. Changes take one lock, so version numbers, aliases
and the removal of blobs that no version uses any more never race each other.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.errors import Conflict, Forbidden, InvalidInput, NotFound
from aios.registry.blobs import BlobStore
from aios.registry.catalog import (
    Caller,
    aliases_of,
    find_model,
    find_version,
    may_see,
    model_view,
    version_view,
)
from aios.registry.manifest import parse_manifest
from aios.registry.probe import PROBE_TIMEOUT, ProbeResult
from aios.registry.probing import ChildProbe, Prober, ProbeRequest, wait_for
from aios.registry.refs import ALIAS, LATEST, NAME
from aios.registry.specs import (
    ModelVersionView,
    ModelView,
    RegisterSpec,
    VersionUpdate,
    check_filename,
    is_reserved,
    name_unavailable,
)
from aios.registry.staging import Staged, keep, stage_file, stage_upload
from aios.store import Database, EventRow, JobRow, QueueRow
from aios.store.models import ModelAliasRow, ModelRow, ModelVersionRow

if TYPE_CHECKING:
    from aios.lineage.catalog import DataCatalog

__all__ = ["DEFAULT_MAX_UPLOAD", "InUse", "Registration", "RegistryOps"]

InUse = Callable[[str, int], list[str]]
"""The names of the deployments that use model NAME version V (none: it may go)."""
DEFAULT_MAX_UPLOAD = 4 << 30
"""Bytes an artifact may have (a file, or a directory's files in all)."""
DEFAULT_TENANT = "default"
START_ALLOWANCE = 60.0
"""Seconds a model's load may wait for its turn (a queue's quota) beyond its own time
limit before the registration gives up."""
DEFAULT_FILENAMES = {
    "onnx": "model.onnx",
    "sklearn": "model.pkl",
    "torchscript": "model.pt",
    "python": "model.py",
}


@dataclass
class Registration:
    """A registration under way (:meth:`RegistryOps.begin`): the upload staged, its load
    started. :meth:`RegistryOps.finish` stores it once the load answered; :meth:`close`
    removes what is left of it either way."""

    user: Caller
    name: str
    spec: RegisterSpec
    file_name: str
    stage: Path
    staged: Staged
    converted: Path
    ticket: object
    prober: Prober
    deadline: float
    """When waiting for the load gives up (monotonic clock): its time limit, and a
    minute for it to be started."""
    remove: Callable[[Path], None]

    def poll(self) -> ProbeResult | None:
        """The load's result once it finished (InvalidInput: it did not load)."""
        if time.monotonic() > self.deadline:
            self.prober.cancel(self.ticket)
            raise InvalidInput(
                f"cannot load {self.spec.format} model {self.file_name}: its load did not "
                "finish in time (its queue may be full); nothing was registered"
            )
        return self.prober.poll(self.ticket)

    def close(self) -> None:
        self.prober.cancel(self.ticket)
        self.remove(self.stage)


@dataclass(frozen=True, slots=True)
class _Accepted:
    """An upload that loaded: what will be stored (the converted model, with
    ``--to-onnx``), its format, file name, signature and conversion record."""

    staged: Staged
    format: str
    filename: str
    signature: dict[str, Any]
    conversion: dict[str, Any] | None


class RegistryOps:
    """Models, versions and aliases, with the caller's rights checked.

    ``in_use`` answers which deployments use a version (a version in use is not
    deleted); ``max_upload`` bounds an artifact's bytes.
    """

    def __init__(
        self,
        db: Database,
        home: Path,
        in_use: InUse | None = None,
        *,
        max_upload: int = DEFAULT_MAX_UPLOAD,
        probe_timeout: float = PROBE_TIMEOUT,
        clock: Callable[[], float] = time.time,
        prober: Prober | None = None,
    ) -> None:
        self.db = db
        self.blobs = BlobStore(home / "registry")
        self.blobs.clear_staging()
        self.in_use = in_use
        self.data: DataCatalog | None = None
        """The data repository, to resolve a model's training dataset (none: kept as
        given)."""
        self.max_upload = max_upload
        self.probe_timeout = probe_timeout
        self.prober: Prober = prober or ChildProbe()
        """Loads the models being registered (the control plane's: a sandboxed job)."""
        self.clock = clock
        self._lock = threading.Lock()

    # -- reads ------------------------------------------------------------------------
    def models(self, user: Caller) -> list[ModelView]:
        """The models the caller may see, by name."""
        query = select(ModelRow).order_by(ModelRow.name)
        if not user.admin:
            query = query.where(ModelRow.tenant == (user.tenant or ""))
        with self.db.sessions() as session:
            return [model_view(session, row) for row in session.scalars(query)]

    def model(self, user: Caller, name: str) -> ModelView:
        with self.db.sessions() as session:
            return model_view(session, find_model(session, user, name))

    def versions(self, user: Caller, name: str) -> list[ModelVersionView]:
        """The versions of a model, newest first."""
        with self.db.sessions() as session:
            model = find_model(session, user, name)
            rows = session.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id)
                .order_by(ModelVersionRow.number.desc())
            )
            return [version_view(session, model, row) for row in rows]

    def version(self, user: Caller, name: str, ref: int | str = LATEST) -> ModelVersionView:
        """Version ``ref`` (a number, an alias or ``latest``) of model ``name``."""
        with self.db.sessions() as session:
            model = find_model(session, user, name)
            return version_view(session, model, find_version(session, model, str(ref)))

    def artifact_path(
        self, user: Caller, name: str, ref: int | str = LATEST
    ) -> tuple[ModelVersionView, Path]:
        """Version ``ref`` of model ``name`` and a local, read-only path to its artifact
        (the file, or the directory, under the name it was registered with) that a
        serving replica on this machine can load."""
        with self._lock, self.db.sessions() as session:
            model = find_model(session, user, name)
            row = find_version(session, model, str(ref))
            entries = None
            if row.artifact == "directory":
                entries = parse_manifest(self.blobs.read(row.sha256))
            path = self.blobs.view(row.sha256, row.filename, entries)
            return version_view(session, model, row), path

    # -- registration -----------------------------------------------------------------
    def _admissible(
        self, session: Session, user: Caller, name: str, spec: RegisterSpec
    ) -> tuple[ModelRow | None, str]:
        """The model a new version of ``name`` joins (None: a new model) and its tenant;
        refuses a name another tenant holds, a tenant the caller is not in, and lineage
        that names a job the caller cannot see."""
        model = session.scalars(select(ModelRow).where(ModelRow.name == name)).first()
        held_elsewhere = model is not None and not may_see(user, model.tenant)
        if held_elsewhere or (model is None and is_reserved(name)):
            raise name_unavailable("model", name)
        if model is not None:
            if spec.tenant is not None and spec.tenant != model.tenant:
                raise InvalidInput(f"tenant: model {name!r} belongs to {model.tenant!r}")
            tenant = model.tenant
        else:
            tenant = spec.tenant or user.tenant or DEFAULT_TENANT
            if not may_see(user, tenant):
                raise Forbidden(
                    f"user {user.name} belongs to tenant {user.tenant!r}, not {tenant!r}"
                )
            if session.get(QueueRow, tenant) is None:
                raise InvalidInput(f"tenant: no queue named {tenant!r}")
        if spec.from_job is not None:
            job = session.get(JobRow, spec.from_job)
            if job is None or not may_see(user, job.queue):
                raise InvalidInput(f"from_job: no job {spec.from_job}")
        return model, tenant

    def register(
        self,
        user: Caller,
        name: str,
        spec: RegisterSpec,
        artifact: IO[bytes],
        filename: str | None = None,
    ) -> ModelVersionView:
        """Stores the artifact read from ``artifact`` (a file, or a tar archive of a
        directory) as the next version of model ``name``, creating the model with its
        first version. ``filename`` is the upload's own name, used when the spec names
        none. Raises InvalidInput with the loader's reason when the model does not load,
        and for an upload over ``max_upload`` bytes. Waits for the load by sleeping: the
        API does :meth:`begin`, awaits, then :meth:`finish` instead."""
        registration = self.begin(user, name, spec, artifact, filename)
        try:
            probed = wait_for(registration.prober, registration.ticket, registration.deadline)
            return self.finish(registration, probed)
        finally:
            registration.close()

    def begin(
        self,
        user: Caller,
        name: str,
        spec: RegisterSpec,
        artifact: IO[bytes],
        filename: str | None = None,
    ) -> Registration:
        """Checks the registration, stages the upload and starts loading it (see
        :meth:`register`); close the result whatever happens next."""
        if not re.fullmatch(NAME, name):
            raise InvalidInput(f"name: {name!r} is not a model name (letters, digits, _.-)")
        if spec.to_onnx and spec.format != "sklearn":
            raise InvalidInput(f"to_onnx: only a sklearn model converts to ONNX, not {spec.format}")
        if spec.to_onnx and spec.artifact == "directory":
            raise InvalidInput("to_onnx: needs one pickled scikit-learn model, not a directory")
        default = "model" if spec.artifact == "directory" else DEFAULT_FILENAMES[spec.format]
        file_name = check_filename(spec.filename or filename or default)
        with self.db.sessions() as session:
            _, tenant = self._admissible(session, user, name, spec)  # before a byte is read
        if spec.dataset and self.data is not None and self.data.has_repository():
            # The reference as a number: a tag or "latest" moves, the lineage must not.
            trained_on = self.data.resolve(spec.dataset, "dataset")
            spec = spec.model_copy(update={"dataset": trained_on.ref})
        stage = self.blobs.new_stage()
        try:
            (stage / "upload").mkdir()
            staged = stage_upload(
                stage / "upload" / file_name, spec.artifact, artifact, self.max_upload
            )
            converted = stage / "converted" / f"{Path(file_name).stem}.onnx"
            if spec.to_onnx:
                converted.parent.mkdir()
            request = ProbeRequest(
                spec.format,
                staged.path,
                converted if spec.to_onnx else None,
                name,
                tenant,
                self.probe_timeout,
            )
            ticket = self.prober.start(user, request)
        except BaseException:
            self.blobs.remove_stage(stage)
            raise
        deadline = time.monotonic() + self.probe_timeout + START_ALLOWANCE
        return Registration(
            user,
            name,
            spec,
            file_name,
            stage,
            staged,
            converted,
            ticket,
            self.prober,
            deadline,
            self.blobs.remove_stage,
        )

    def finish(self, registration: Registration, probed: ProbeResult) -> ModelVersionView:
        """Stores a registration whose model loaded, as the next version."""
        spec = registration.spec
        if not spec.to_onnx:
            accepted = _Accepted(
                registration.staged, spec.format, registration.file_name, probed.signature, None
            )
        else:
            conversion = dict(
                probed.conversion or {},
                source_format=spec.format,
                source_sha256=registration.staged.sha256,
            )
            converted = registration.converted
            accepted = _Accepted(
                stage_file(converted), "onnx", converted.name, probed.signature, conversion
            )
        with self._lock:
            keep(self.blobs, accepted.staged)
            with self.db.transaction() as session:
                return self._record(session, registration.user, registration.name, spec, accepted)

    def _record(
        self, session: Session, user: Caller, name: str, spec: RegisterSpec, accepted: _Accepted
    ) -> ModelVersionView:
        """Writes the next version of ``name`` (and the model, for its first), its alias
        and an event row, in ``session``'s transaction."""
        now = self.clock()
        model, tenant = self._admissible(session, user, name, spec)
        if model is None:
            model = ModelRow(
                name=name, tenant=tenant, owner=user.name, created_at=now, last_version=0
            )
            session.add(model)
            session.flush()
        model.last_version += 1
        row = ModelVersionRow(
            model_id=model.id,
            number=model.last_version,
            format=accepted.format,
            artifact=spec.artifact,
            filename=accepted.filename,
            sha256=accepted.staged.sha256,
            size=accepted.staged.size,
            signature=accepted.signature,
            metrics=dict(spec.metrics),
            description=spec.description,
            tags=dict(spec.tags),
            conversion=accepted.conversion,
            from_job=spec.from_job,
            dataset=spec.dataset,
            created_at=now,
            created_by=user.name,
        )
        session.add(row)
        session.flush()
        if spec.alias is not None:
            _point(session, model, spec.alias, row.number, now)
        _event(
            session,
            now,
            "model_registered",
            f"model {name} version {row.number} registered by {user.name}",
            model=name,
            version=row.number,
            sha256=row.sha256,
        )
        session.flush()
        return version_view(session, model, row)

    # -- aliases, tags, deletion --------------------------------------------------------
    def set_alias(self, user: Caller, name: str, alias: str, version: int) -> ModelView:
        """Points ``NAME@alias`` at ``version``, creating the alias or moving it in one
        update (a reader sees the old version or the new one, never neither)."""
        with self._lock, self.db.transaction() as session:
            now = self.clock()
            model = find_model(session, user, name)
            _point(session, model, alias, version, now)
            _event(session, now, "model_alias_set", f"model {name}@{alias} → version {version}")
            session.flush()
            return model_view(session, model)

    def remove_alias(self, user: Caller, name: str, alias: str) -> ModelView:
        with self._lock, self.db.transaction() as session:
            now = self.clock()
            model = find_model(session, user, name)
            row = session.get(ModelAliasRow, (model.id, alias))
            if row is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            session.delete(row)
            _event(session, now, "model_alias_removed", f"model {name}@{alias} removed")
            session.flush()
            return model_view(session, model)

    def update_version(
        self, user: Caller, name: str, ref: str, update: VersionUpdate
    ) -> ModelVersionView:
        """Sets the description and merges the tags (a tag set to None is removed)."""
        with self._lock, self.db.transaction() as session:
            now = self.clock()
            model = find_model(session, user, name)
            row = find_version(session, model, ref)
            if update.description is not None:
                row.description = update.description
            if update.tags is not None:
                tags = dict(row.tags)
                for key, value in update.tags.items():
                    if value is None:
                        tags.pop(key, None)
                    else:
                        tags[key] = value
                row.tags = tags
            _event(
                session, now, "model_version_updated", f"model {name} version {row.number} updated"
            )
            session.flush()
            return version_view(session, model, row)

    def delete_version(self, user: Caller, name: str, version: int) -> None:
        """Deletes a version and the blobs no other version uses. Refused (Conflict)
        while an alias points at it or a deployment uses it."""
        with self._lock:
            with self.db.sessions() as session:
                model = find_model(session, user, name)
                find_version(session, model, str(version))
                pointing = [a for a, v in aliases_of(session, model).items() if v == version]
            if pointing:
                raise Conflict(
                    f"model {name} version {version} is aliased as {', '.join(pointing)}; "
                    "move or remove the alias first"
                )
            users = self.in_use(name, version) if self.in_use is not None else []
            if users:
                raise Conflict(
                    f"model {name} version {version} is in use by deployment "
                    f"{', '.join(sorted(users))}; undeploy it first"
                )
            with self.db.transaction() as session:
                now = self.clock()
                model = find_model(session, user, name)
                row = find_version(session, model, str(version))
                unused = self._unused_blobs(session, row)
                session.delete(row)
                _event(
                    session, now, "model_version_deleted", f"model {name} version {version} deleted"
                )
            self.blobs.discard(unused)

    def _unused_blobs(self, session: Session, gone: ModelVersionRow) -> list[str]:
        """The blobs of ``gone`` that no other version uses (as its file, its manifest,
        or a file its manifest lists)."""
        candidates = {gone.sha256}
        if gone.artifact == "directory":
            candidates |= {e.sha256 for e in parse_manifest(self.blobs.read(gone.sha256))}
        others: set[tuple[str, str]] = {
            (digest, artifact)
            for digest, artifact in session.execute(
                select(ModelVersionRow.sha256, ModelVersionRow.artifact).where(
                    (ModelVersionRow.model_id != gone.model_id)
                    | (ModelVersionRow.number != gone.number)
                )
            )
        }
        used = {digest for digest, _ in others}
        for digest, artifact in others:
            if artifact == "directory":
                used |= {e.sha256 for e in parse_manifest(self.blobs.read(digest))}
        return sorted(candidates - used)


def _point(session: Session, model: ModelRow, alias: str, number: int, now: float) -> None:
    if not re.fullmatch(ALIAS, alias):
        raise InvalidInput(f"alias: {alias!r} is not an alias (a name, not a number or 'latest')")
    if session.get(ModelVersionRow, (model.id, number)) is None:
        raise NotFound(f"model {model.name!r} has no version {number}")
    row = session.get(ModelAliasRow, (model.id, alias))
    if row is None:
        session.add(ModelAliasRow(model_id=model.id, alias=alias, version=number, updated_at=now))
    else:
        row.version, row.updated_at = number, now


def _event(session: Session, now: float, kind: str, message: str, **data: object) -> None:
    session.add(EventRow(time=now, job_id=None, kind=kind, message=message, data=dict(data)))
