"""The deployment controller: keeps each deployment's replicas running, ready and routed.

A loop on its own thread (woken by a change, else every ``interval`` seconds), like a
Kubernetes controller: for each deployment it compares the replicas wanted (the
autoscaler's answer between min and max) with the replica jobs that live, submits or
cancels service jobs through the control plane (the scheduler places them under the
deployment's queue, quota and priority, exactly as any job), finds each running
replica's address in the ``endpoint.json`` it writes once listening, checks it is
ready, and publishes the ready ones to the gateway's :class:`Routes`. Each replica is
handed its deployment's secret in its job's environment, and the gateway is given it
with the route (:mod:`~aios.serving.secret`): a replica answers no one else.

A replica that dies (a failed job, a lost node) just stops being live: the next pass
starts another. One that fails right after starting, again and again, backs off
exponentially so a broken model does not fork forever. Replicas of an older generation
(the deployment's versions changed) stop only once as many of the new one are ready.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, select

from aios.control.auth import ADMIN, Principal
from aios.control.keys import control_key
from aios.control.layout import job_dir
from aios.control.ops import ControlOps
from aios.control.specs import JobSpec
from aios.deployments.autoscale import Autoscaler, ScalePolicy
from aios.deployments.ops import DeploymentOps
from aios.deployments.routing import Endpoint, Route, Routes
from aios.deployments.specs import ReplicaView
from aios.errors import AiosError
from aios.files import read_in
from aios.loop import Loop
from aios.serving.secret import KEY_NAME, SECRET_ENV, deployment_secret
from aios.store import Database, JobRow
from aios.store.models import DeploymentRow, ReplicaRow

__all__ = ["DeploymentController", "replica_command"]

log = logging.getLogger("aios.serving")
LIVE = frozenset({"queued", "running"})
ENDPOINT_FILE = "endpoint.json"
MAX_BACKOFF = 60.0


def replica_command(config: dict[str, Any], host: str = "127.0.0.1") -> list[str]:
    """The command a replica job runs: the V2 server on a free port of its node (bound
    to ``host``), every version of the deployment loaded, its address written to
    ``endpoint.json``. Its secret is not among the arguments (the job's environment
    carries it: every user may read a process's command line)."""
    # In an image, its own Python (with AIOS installed) on its PATH; else this one.
    python = "python3" if config.get("image") else sys.executable
    command = [python, "-m", "aios.serving"]
    for v in config["versions"]:
        command += ["--model", f"{v['model']}:{v['version']}={v['format']}:{v['path']}"]
    batching = config["batching"]
    command += [
        "--host",
        host,
        "--port",
        "0",
        "--ready-file",
        ENDPOINT_FILE,
        "--max-batch-size",
        str(batching["max_batch_size"]),
        "--max-queue-delay-ms",
        str(batching["max_queue_delay_ms"]),
        "--max-queue-size",
        str(batching["max_queue_size"]),
        "--timeout",
        str(batching["timeout"]),
        # The model's threads match the cores the replica was given (onnxruntime would
        # otherwise size its pool by the machine, and spin on cores it does not hold).
        "--threads",
        str(max(1, config["cpus"] // 1000)),
    ]
    if config["gpus"]:
        command.append("--gpu")
    return command


@dataclass
class _Tracked:
    """What the controller remembers about one deployment between passes."""

    scaler: Autoscaler
    endpoints: dict[int, Endpoint] = field(default_factory=dict)
    quick_failures: int = 0
    not_before: float = 0.0
    retiring: set[int] = field(default_factory=set)
    """Old-generation replicas stopped to make room for new ones."""


class DeploymentController:
    def __init__(
        self,
        db: Database,
        deployments: DeploymentOps,
        control: ControlOps,
        home: Path,
        routes: Routes,
        interval: float = 0.5,
    ) -> None:
        self.db = db
        self.deployments = deployments
        self.control = control
        self.home = home
        self.routes = routes
        self.interval = interval
        self._tracked: dict[str, _Tracked] = {}
        self._loop = Loop("aios-deploy", self.step, interval)
        self._http = httpx.Client(timeout=1.0, trust_env=False)
        self._key: bytes | None = None  # the control plane's key of replica secrets
        self.bind_host = "127.0.0.1"
        """Where replicas listen: all addresses (``0.0.0.0``) when they run on other
        machines (a Ray cluster), and the gateway reaches them at their node's address."""
        deployments.listeners.append(self.wake)
        deployments.traffic_listeners.append(self.apply_traffic)

    # -- the thread ---------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._http.close()

    def wake(self) -> None:
        self._loop.wake()

    def apply_traffic(self, row: DeploymentRow) -> None:
        """Routes by ``row``'s new weights at once, not at the next pass: a request sent
        after the change was answered goes where the change says."""
        self.routes.set_weights(row.name, _weights(row.config), row.updated_at)

    # -- one pass -----------------------------------------------------------------
    def step(self) -> None:
        now = time.time()
        rows = {row.name: row for row in self.deployments.rows()}
        with self.db.sessions() as session:
            replicas = list(session.scalars(select(ReplicaRow)))
            ids = [r.job_id for r in replicas]
            found = session.execute(select(JobRow.id, JobRow.state).where(JobRow.id.in_(ids)))
            states: dict[int, str] = {row[0]: row[1] for row in found}
        by_deployment: dict[str, list[ReplicaRow]] = {}
        for replica in replicas:
            by_deployment.setdefault(replica.deployment, []).append(replica)
        for name in set(by_deployment) - set(rows):
            self._retire(by_deployment[name], states)  # undeployed: stop what is left
        for name in set(self._tracked) - set(rows):
            del self._tracked[name]
            self.routes.remove(name)
        for name, row in rows.items():
            self._reconcile(row, by_deployment.get(name, []), states, now)

    def _reconcile(
        self, row: DeploymentRow, replicas: list[ReplicaRow], states: dict[int, str], now: float
    ) -> None:
        config = row.config
        tracked = self._tracked.get(row.name)
        if tracked is None:
            policy = ScalePolicy(
                min_replicas=config["min_replicas"],
                max_replicas=config["max_replicas"],
                target=config["target_in_flight"],
                scale_down_delay=config.get("scale_down_delay", 30.0),
            )
            tracked = self._tracked[row.name] = _Tracked(Autoscaler(policy))
        ended = [r for r in replicas if states.get(r.job_id) not in LIVE]
        live = [r for r in replicas if states.get(r.job_id) in LIVE]
        self._forget(ended, states, tracked, now)
        current = [r for r in live if r.generation == row.generation]
        old = [r for r in live if r.generation != row.generation]

        ready = self._endpoints(row, live, states, tracked)
        route = self.routes.get(row.name)
        tracked.scaler.observe(now, route.in_flight() if route is not None else 0)
        ready_current = [r for r in current if r.job_id in ready]
        desired = tracked.scaler.desired(now, max(len(current), 1))

        owner = Principal(row.owner, row.tenant, bool(config.get("admin")))
        secret = self._secret(row)
        if len(current) < desired and now >= tracked.not_before:
            self._submit(row, owner, desired - len(current), now, secret)
        elif len(current) > desired:
            extra = sorted(current, key=lambda r: (r.job_id in ready, -r.job_id))
            self._cancel(owner, extra[: len(current) - desired])
        if old:
            self._roll(owner, old, current, ready_current, ready, states, tracked, desired)

        endpoints = [tracked.endpoints[r.job_id] for r in live if r.job_id in ready]
        self.routes.set(
            Route(
                row.name,
                row.tenant,
                _weights(config),
                endpoints,
                secret=secret,
                revision=row.updated_at,
            )
        )
        message = f"{len(ready)}/{desired} replicas ready"
        if old:
            message += f"; rolling out generation {row.generation}"
        if now < tracked.not_before:
            message += f"; replicas keep failing, next try in {tracked.not_before - now:.0f} s"
        self._record(row, desired, message)

    def _roll(
        self,
        owner: Principal,
        old: list[ReplicaRow],
        current: list[ReplicaRow],
        ready_current: list[ReplicaRow],
        ready: set[int],
        states: dict[int, str],
        tracked: _Tracked,
        desired: int,
    ) -> None:
        """Retires the replicas of older generations: all of them once enough new ones
        are ready; one at a time while new ones wait for room and more than one replica
        still serves (a full machine has no room for a surge)."""
        if len(ready_current) >= desired:
            self._cancel(owner, old)
            return
        if any(states.get(job_id) in LIVE for job_id in tracked.retiring):
            return
        waiting = any(states.get(r.job_id) == "queued" for r in current)
        if waiting and len(ready) > 1:
            oldest = min(old, key=lambda r: r.job_id)
            tracked.retiring.add(oldest.job_id)
            self._cancel(owner, [oldest])

    def _forget(
        self, ended: list[ReplicaRow], states: dict[int, str], tracked: _Tracked, now: float
    ) -> None:
        if not ended:
            return
        with self.db.transaction() as session:
            for replica in ended:
                endpoint = tracked.endpoints.pop(replica.job_id, None)
                failed = states.get(replica.job_id) in {"failed", "unschedulable"}
                if failed and endpoint is None and now - replica.created_at < 60:
                    tracked.quick_failures += 1  # died before it was ever ready
                session.execute(delete(ReplicaRow).where(ReplicaRow.job_id == replica.job_id))
        if tracked.quick_failures:
            delay = min(2.0**tracked.quick_failures, MAX_BACKOFF)
            tracked.not_before = now + delay

    def _endpoints(
        self,
        row: DeploymentRow,
        live: Iterable[ReplicaRow],
        states: dict[int, str],
        tracked: _Tracked,
    ) -> set[int]:
        """The live replicas ready to serve; finds and checks new ones."""
        ready: set[int] = set()
        for replica in live:
            endpoint = tracked.endpoints.get(replica.job_id)
            if states.get(replica.job_id) != "running":
                tracked.endpoints.pop(replica.job_id, None)
                continue
            if endpoint is not None and not endpoint.failed:
                ready.add(replica.job_id)
                continue
            url = self._address(replica.job_id)
            if url is None or not self._is_ready(url):
                continue
            serves = frozenset((m, int(v)) for m, v in replica.serves)
            if endpoint is None:
                endpoint = Endpoint(replica.job_id, url, serves, replica.generation)
                tracked.endpoints[replica.job_id] = endpoint
                tracked.quick_failures = 0
            endpoint.url, endpoint.failed = url, False
            ready.add(replica.job_id)
        return ready

    def _address(self, job_id: int) -> str | None:
        try:  # the replica's own directory: never through a link it left there
            data = json.loads(read_in(job_dir(self.home, job_id), ENDPOINT_FILE, 4096))
            host, port = str(data["host"]), int(data["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if host in {"0.0.0.0", "::"}:  # listening everywhere: reach it at its node
            found = self._node_address(job_id)
            if found is None:
                return None
            host = found
        return f"http://{host}:{port}"

    def _node_address(self, job_id: int) -> str | None:
        """The address of the node running the replica job ``job_id`` (its ``address``
        label, which Ray's nodes carry), or None while it is not known."""
        job = self.control.get(ADMIN, job_id)
        if not job.attempts:
            return None
        node = job.attempts[-1].node
        for view in self.control.nodes():
            if view.name == node:
                return view.labels.get("address")
        return None

    def _is_ready(self, url: str) -> bool:
        try:
            return self._http.get(f"{url}/v2/health/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def _secret(self, row: DeploymentRow) -> str:
        """The secret the replicas of ``row`` ask of every request."""
        if self._key is None:
            self._key = control_key(self.db, KEY_NAME)
        return deployment_secret(self._key, row.name, row.id, row.created_at)

    def _submit(
        self, row: DeploymentRow, owner: Principal, count: int, now: float, secret: str
    ) -> None:
        config = row.config
        spec = JobSpec.model_validate(
            {
                "name": f"{row.name}-replica",
                "command": replica_command(config, self.bind_host),
                "cpus": f"{config['cpus']}m",
                "memory": config["memory"],
                "gpus": config["gpus"],
                "gpu_kind": config["gpu_kind"],
                "queue": config["queue"],
                "priority": config["priority"],
                "kind": "service",
                "grace": 10.0,
                "env": {SECRET_ENV: secret},
                "image": config.get("image"),
            }
        )
        serves = [[v["model"], v["version"]] for v in config["versions"]]
        # The model files live in the control plane's home, which a sandbox hides: each
        # is bound into the replica's sandbox, read-only, and nothing else of the home.
        models = sorted({str(v["path"]) for v in config["versions"]})
        for _ in range(count):
            try:
                job = self.control.submit(owner, spec, mounts=models)
            except AiosError as exc:
                self._record(row, row.desired, f"cannot start a replica: {exc}")
                return
            with self.db.transaction() as session:
                session.add(
                    ReplicaRow(
                        job_id=job.id,
                        deployment=row.name,
                        generation=row.generation,
                        serves=serves,
                        created_at=now,
                    )
                )

    def _cancel(self, owner: Principal, replicas: Iterable[ReplicaRow]) -> None:
        for replica in replicas:
            try:
                self.control.cancel(owner, replica.job_id)
            except AiosError as exc:
                log.warning("cannot stop replica job %s: %s", replica.job_id, exc)

    def _retire(self, replicas: list[ReplicaRow], states: dict[int, str]) -> None:
        admin = Principal("deployment-controller", None, True)
        self._cancel(admin, [r for r in replicas if states.get(r.job_id) in LIVE])
        gone = [r.job_id for r in replicas if states.get(r.job_id) not in LIVE]
        if gone:
            with self.db.transaction() as session:
                session.execute(delete(ReplicaRow).where(ReplicaRow.job_id.in_(gone)))

    def _record(self, row: DeploymentRow, desired: int, message: str) -> None:
        if row.desired == desired and row.message == message:
            return
        with self.db.transaction() as session:
            stored = session.get(DeploymentRow, row.id)
            if stored is not None:
                stored.desired, stored.message = desired, message
        row.desired, row.message = desired, message

    def replicas(self, name: str) -> list[ReplicaView]:
        """The live replicas of deployment ``name``, for its view."""
        with self.db.sessions() as session:
            rows = [
                (replica, state)
                for replica, state in session.execute(
                    select(ReplicaRow, JobRow.state)
                    .join(JobRow, JobRow.id == ReplicaRow.job_id)
                    .where(ReplicaRow.deployment == name)
                    .order_by(ReplicaRow.job_id)
                )
            ]
        tracked = self._tracked.get(name)
        views = []
        for replica, state in rows:
            endpoint = tracked.endpoints.get(replica.job_id) if tracked else None
            views.append(
                ReplicaView(
                    job_id=replica.job_id,
                    state=state,
                    generation=replica.generation,
                    ready=endpoint is not None and not endpoint.failed,
                    url=endpoint.url if endpoint else None,
                    in_flight=endpoint.in_flight if endpoint else 0,
                )
            )
        return views


def _weights(config: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(model, version, weight in percent) of each version a deployment's spec serves."""
    return [(v["model"], v["version"], v["weight"]) for v in config["versions"]]
