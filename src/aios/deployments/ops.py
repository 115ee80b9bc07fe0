"""Deployments: model versions served by replicas that the scheduler places as jobs.

A deployment names one or more registered model versions with traffic weights (a
canary is a second version with a small weight), the resources of one replica, the
queue and priority its replicas run under, and how many replicas to run (fixed, or
between a minimum and a maximum that the autoscaler moves). Every replica loads every
version of the deployment, so shifting traffic between them, or rolling a canary back,
is a change of weights at the gateway that drops no request. Changing the versions
themselves starts a new *generation* of replicas, and the old ones stop only once the
new ones are ready (see :mod:`aios.deployments.controller`).

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

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.control.auth import Principal
from aios.control.specs import checked_cpu, checked_memory
from aios.deployments.specs import (
    REF,
    DeploymentSpec,
    DeploymentView,
    ReplicaView,
    TrafficUpdate,
    VersionWeight,
    parse_canary,
)
from aios.errors import Conflict, InvalidInput, NotFound
from aios.registry.service import RegistryOps
from aios.registry.specs import is_reserved, name_unavailable
from aios.store import Database, EventRow
from aios.store.models import DeploymentRow

__all__ = ["DeploymentOps", "deployment_view"]


class DeploymentOps:
    """Create, list, change and delete deployments; the controller does the rest."""

    def __init__(self, db: Database, registry: RegistryOps) -> None:
        self.db = db
        self.registry = registry
        self.listeners: list[Any] = []
        """Called with no argument after any change (the controller wakes)."""
        self.traffic_listeners: list[Callable[[DeploymentRow], None]] = []
        """Called with the changed row after a change of traffic weights, before the
        change is answered: the gateway routes by the new weights from then on."""

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
            "cpus": checked_cpu(spec.cpus),
            "memory": checked_memory(spec.memory),
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
        for listener in self.traffic_listeners:
            listener(row)
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
