"""Deployments: model versions served by replicas that the scheduler places as jobs.

A deployment names one or more registered model versions with traffic weights (a
canary is a second version with a small weight), the resources of one replica, the
queue and priority its replicas run under, and how many replicas to run (fixed, or
between a minimum and a maximum that the autoscaler moves). Every replica loads every
version of the deployment, so shifting traffic between them, or rolling a canary back,
is a change of weights at the gateway that drops no request. Changing the versions
themselves starts a new *generation* of replicas, and the old ones stop only once the
new ones are ready (see :mod:`aios.serving.controller`).

Same tenant rules as jobs and models: a deployment belongs to its creator's tenant,
whose members see and change it; an admin sees all; others are told it does not exist
(404, as for a name no one holds). Names are global, as the gateway's
``/v2/models/NAME`` is: creating a deployment under a name another tenant holds is
refused with the registry's one refusal of an unavailable name, word for word that of
a name reserved for the system (``aios-…``), so it says only that the name is not free
(see :mod:`aios.registry.service`). A name the caller's own tenant holds is reported as
existing, since the caller sees that deployment anyway.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.control.auth import Principal
from aios.control.specs import _bytes, _millicores, some_cpu, some_memory
from aios.errors import Conflict, InvalidInput, NotFound
from aios.registry.service import RegistryOps
from aios.registry.specs import check_reference, is_reserved, name_unavailable
from aios.store import Database, EventRow
from aios.store.models import DeploymentRow

__all__ = [
    "DeploymentOps",
    "DeploymentSpec",
    "DeploymentView",
    "ReplicaView",
    "TrafficUpdate",
    "VersionWeight",
]

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]{0,63})(?:@(?P<ref>[A-Za-z0-9_.\-]+))?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentSpec(_Strict):
    """What ``aios deploy`` sends: the model (``NAME@VERSION``, ``NAME@alias`` or
    ``NAME`` for the latest), an optional canary (``NAME@VERSION:PERCENT``), replicas,
    one replica's resources, and where it is scheduled."""

    name: Annotated[str, Field(pattern=NAME)] | None = Field(
        None, description="default: the model's name"
    )
    model: str = Field(..., max_length=200)
    canary: str | None = Field(None, max_length=200, description="NAME@VERSION:PERCENT")
    replicas: int | None = Field(None, ge=1, le=64)
    min_replicas: int | None = Field(None, ge=1, le=64)
    max_replicas: int | None = Field(None, ge=1, le=64)
    target_in_flight: float = Field(4.0, gt=0, le=10_000)
    scale_down_delay: float = Field(
        30.0, ge=0, le=86_400, description="seconds of lower load before a replica goes"
    )
    cpus: float | str = 1.0
    memory: int | str = "1G"
    gpus: int = Field(0, ge=0, le=64)
    gpu_kind: Annotated[str, Field(pattern=NAME)] | None = None
    queue: Annotated[str, Field(pattern=NAME)] | None = None
    priority: int = Field(0, ge=-1_000_000, le=1_000_000)
    max_batch_size: int = Field(32, ge=1, le=65_536)
    max_queue_delay_ms: float = Field(2.0, ge=0, le=60_000)
    max_queue_size: int = Field(1024, ge=1, le=1_000_000)
    timeout: float = Field(30.0, gt=0, le=3600)
    image: str | None = Field(
        None,
        max_length=512,
        description="an OCI image with AIOS installed for the replicas to run in "
        "(default: the host's root, read-only)",
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        match = REF.match(value)
        if match is None:
            raise ValueError(f"model: {value!r} is not NAME, NAME@VERSION or NAME@ALIAS")
        _check_version(match, "model")
        return value

    @field_validator("canary")
    @classmethod
    def _canary(cls, value: str | None) -> str | None:
        if value is not None:
            parse_canary(value)
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float | str) -> float | str:
        return some_cpu(value, "a replica")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str) -> int | str:
        return some_memory(value, "a replica")

    @model_validator(mode="after")
    def _replicas(self) -> DeploymentSpec:
        if self.replicas is not None and (self.min_replicas or self.max_replicas):
            raise ValueError("give either replicas or min_replicas/max_replicas, not both")
        low, high = self.bounds
        if low > high:
            raise ValueError(f"min_replicas {low} is more than max_replicas {high}")
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        if self.replicas is not None:
            return self.replicas, self.replicas
        low = self.min_replicas or 1
        return low, self.max_replicas or max(low, 1)


def parse_canary(text: str) -> tuple[str, int]:
    """``NAME@VERSION:PERCENT`` → (``NAME@VERSION``, percent)."""
    ref, _, percent = text.rpartition(":")
    match = REF.match(ref)
    if match is None or not percent.isdigit() or not 0 < int(percent) < 100:
        raise ValueError(f"canary: {text!r} is not NAME@VERSION:PERCENT with 0 < PERCENT < 100")
    _check_version(match, "canary")
    return ref, int(percent)


def _check_version(match: re.Match[str], field: str) -> None:
    """A version number past what the registry can hold is refused here: on PostgreSQL
    looking it up would be an error rather than a version that is absent."""
    try:
        check_reference(match["ref"] or "latest")
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


class VersionWeight(_Strict):
    model: str
    version: int
    weight: int = Field(..., ge=0, le=100)
    format: str = ""


class TrafficUpdate(_Strict):
    """New traffic weights by version number (percentages that add up to 100), e.g.
    ``{"3": 50, "4": 50}``; ``{"3": 100}`` rolls a canary back."""

    weights: dict[str, int]


class ReplicaView(BaseModel):
    job_id: int
    state: str
    generation: int
    ready: bool
    url: str | None
    in_flight: int


class DeploymentView(BaseModel):
    name: str
    tenant: str
    owner: str
    versions: list[VersionWeight]
    min_replicas: int
    max_replicas: int
    desired_replicas: int
    generation: int
    queue: str
    priority: int
    cpus: float
    memory: int
    gpus: int
    replicas: list[ReplicaView]
    message: str
    created_at: float
    updated_at: float


class DeploymentOps:
    """Create, list, change and delete deployments; the controller does the rest."""

    def __init__(self, db: Database, registry: RegistryOps) -> None:
        self.db = db
        self.registry = registry
        self.listeners: list[Any] = []
        """Called with no argument after any change (the controller wakes)."""

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def _resolve(self, user: Principal, text: str, weight: int) -> dict[str, Any]:
        match = REF.match(text)
        if match is None:
            raise InvalidInput(f"model: {text!r} is not NAME@VERSION")
        version, path = self.registry.artifact_path(user, match["name"], match["ref"] or "latest")
        return {
            "model": version.name,
            "version": version.version,
            "weight": weight,
            "format": version.format,
            "path": str(path),
        }

    def _config(self, user: Principal, spec: DeploymentSpec) -> dict[str, Any]:
        canary_weight = 0
        versions = []
        if spec.canary is not None:
            ref, canary_weight = parse_canary(spec.canary)
            versions.append(self._resolve(user, ref, canary_weight))
        versions.insert(0, self._resolve(user, spec.model, 100 - canary_weight))
        if len({(v["model"], v["version"]) for v in versions}) < len(versions):
            raise InvalidInput("canary: the canary is the same version as the model")
        queue = spec.queue or user.tenant or "default"
        user.check_queue(queue)
        low, high = spec.bounds
        return {
            "versions": versions,
            "min_replicas": low,
            "max_replicas": high,
            "target_in_flight": spec.target_in_flight,
            "scale_down_delay": spec.scale_down_delay,
            "cpus": _millicores(spec.cpus),
            "memory": _bytes(spec.memory),
            "gpus": spec.gpus,
            "gpu_kind": spec.gpu_kind,
            "queue": queue,
            "priority": spec.priority,
            "image": spec.image,
            "batching": {
                "max_batch_size": spec.max_batch_size,
                "max_queue_delay_ms": spec.max_queue_delay_ms,
                "max_queue_size": spec.max_queue_size,
                "timeout": spec.timeout,
            },
            "admin": user.admin,
        }

    def create(self, user: Principal, spec: DeploymentSpec) -> DeploymentView:
        """Records the deployment; its replicas are submitted by the controller."""
        config = self._config(user, spec)
        versions = config["versions"]
        name = spec.name or versions[0]["model"]
        now = time.time()
        with self.db.transaction() as session:
            held = session.scalar(select(DeploymentRow).where(DeploymentRow.name == name))
            if (held is None and is_reserved(name)) or (
                held is not None and not user.may_see(held.tenant)
            ):
                raise name_unavailable("deployment", name)
            if held is not None:
                raise Conflict(
                    f"a deployment named {name!r} exists already (update it with --update)"
                )
            row = DeploymentRow(
                name=name,
                tenant=config["queue"],
                owner=user.name,
                config=config,
                generation=1,
                desired=config["min_replicas"],
                message="starting replicas",
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            _event(session, now, "deployed", f"deployment {name} of {_label(versions)}")
            view = deployment_view(row, [])
        self._changed()
        return view

    def update(self, user: Principal, name: str, spec: DeploymentSpec) -> DeploymentRow:
        """Replaces the deployment's spec. When what a replica runs changes (versions,
        resources, batching, queue, priority), a new generation of replicas starts and
        the old ones stop once as many new ones are ready: a rolling update that drops
        no request. Bounds and traffic weights alone change in place."""
        if spec.name not in (None, name):
            raise InvalidInput(f"name: {spec.name!r} is not {name!r} (a deployment keeps its name)")
        config = self._config(user, spec)
        with self.db.transaction() as session:
            row = self._visible(session, user, name)
            if config["queue"] != row.tenant:
                raise InvalidInput(f"queue: a deployment stays in its queue ({row.tenant})")
            if _replica_shape(config) != _replica_shape(row.config):
                row.generation += 1
            row.config = config
            row.updated_at = now = time.time()
            _event(
                session,
                now,
                "redeployed",
                f"deployment {name}: {_label(config['versions'])}, generation {row.generation}",
            )
            session.flush()
            session.expunge(row)
        self._changed()
        return row

    def _visible(self, session: Session, user: Principal, name: str) -> DeploymentRow:
        row = session.scalar(select(DeploymentRow).where(DeploymentRow.name == name))
        if row is None or not user.may_see(row.tenant):
            raise NotFound(f"no deployment {name!r}")
        return row

    def rows(self, user: Principal | None = None) -> list[DeploymentRow]:
        with self.db.sessions() as session:
            rows = list(session.scalars(select(DeploymentRow).order_by(DeploymentRow.name)))
            session.expunge_all()
        return [r for r in rows if user is None or user.may_see(r.tenant)]

    def row(self, user: Principal, name: str) -> DeploymentRow:
        with self.db.sessions() as session:
            row = self._visible(session, user, name)
            session.expunge(row)
            return row

    def set_traffic(self, user: Principal, name: str, update: TrafficUpdate) -> DeploymentRow:
        """Moves traffic between the versions the replicas serve; drops no request."""
        with self.db.transaction() as session:
            row = self._visible(session, user, name)
            config = dict(row.config)
            versions = [dict(v) for v in config["versions"]]
            known = {str(v["version"]): v for v in versions}
            unknown = sorted(set(update.weights) - set(known))
            if unknown:
                raise InvalidInput(
                    f"weights: version {', '.join(unknown)} is not served by {name} "
                    f"(it serves {', '.join(sorted(known))})"
                )
            if any(w < 0 for w in update.weights.values()) or sum(update.weights.values()) != 100:
                raise InvalidInput("weights: give percentages that add up to 100")
            for key, version in known.items():
                version["weight"] = update.weights.get(key, 0)
            config["versions"] = versions
            row.config = config
            row.updated_at = now = time.time()
            _event(session, now, "traffic", f"deployment {name}: {_label(versions)}")
            session.flush()
            session.expunge(row)
        self._changed()
        return row

    def delete(self, user: Principal, name: str) -> None:
        """Removes the deployment; the controller stops its replicas."""
        with self.db.transaction() as session:
            row = self._visible(session, user, name)
            session.delete(row)
            _event(session, time.time(), "undeployed", f"deployment {name} removed")
        self._changed()

    def in_use(self, model: str, version: int) -> list[str]:
        """The deployments that serve ``model`` version ``version`` (the registry
        refuses to delete it while any does)."""
        return [
            row.name
            for row in self.rows()
            if any(v["model"] == model and v["version"] == version for v in row.config["versions"])
        ]


def _replica_shape(config: dict[str, Any]) -> tuple[Any, ...]:
    """What a replica is started with: a change of it needs new replicas."""
    served = sorted((v["model"], v["version"]) for v in config["versions"])
    return (
        served,
        config["cpus"],
        config["memory"],
        config["gpus"],
        config["gpu_kind"],
        config["priority"],
        sorted(config["batching"].items()),
    )


def _label(versions: list[dict[str, Any]]) -> str:
    return ", ".join(f"{v['model']}@{v['version']} {v['weight']}%" for v in versions)


def _event(session: Session, now: float, kind: str, message: str) -> None:
    session.add(EventRow(time=now, job_id=None, kind=kind, message=message, data={}))


def deployment_view(row: DeploymentRow, replicas: list[ReplicaView]) -> DeploymentView:
    config = row.config
    return DeploymentView(
        name=row.name,
        tenant=row.tenant,
        owner=row.owner,
        versions=[
            VersionWeight(
                model=v["model"], version=v["version"], weight=v["weight"], format=v["format"]
            )
            for v in config["versions"]
        ],
        min_replicas=config["min_replicas"],
        max_replicas=config["max_replicas"],
        desired_replicas=row.desired,
        generation=row.generation,
        queue=config["queue"],
        priority=config["priority"],
        cpus=config["cpus"] / 1000,
        memory=config["memory"],
        gpus=config["gpus"],
        replicas=replicas,
        message=row.message,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
