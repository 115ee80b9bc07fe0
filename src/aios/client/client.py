"""The Python SDK: :class:`Client` speaks the REST API with httpx.

``Client()`` finds the server in ``AIOS_URL`` (default ``http://127.0.0.1:8470``) and
its token in ``AIOS_TOKEN``, else in ``$AIOS_HOME/admin.token`` when readable (the
single-user default). Errors from the server raise :class:`ApiError` with its message.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx

from aios.control.specs import (
    EventView,
    JobView,
    NodeView,
    PipelineSpec,
    PipelineView,
    QueueView,
    TokenListing,
    TokenView,
    WhoAmI,
)
from aios.deployments.specs import DeploymentSpec, DeploymentView
from aios.errors import AiosError
from aios.registry.specs import ModelVersionView, ModelView

if TYPE_CHECKING:
    from aios.control.history_api import PolicyView
    from aios.lineage.api import LineageView
    from aios.lineage.sharing import SharingView
    from aios.simulator.history import History

__all__ = ["DEFAULT_URL", "TERMINAL", "ApiError", "Client"]

DEFAULT_URL = "http://127.0.0.1:8470"
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "upstream_failed", "unschedulable"})
PIPELINE_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
REGISTER_TIMEOUT = 900.0
"""Seconds a registration may take: the upload, then loading (and converting) it."""

IDEMPOTENCY_KEY = "Idempotency-Key"
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Seconds before each retry of a submission whose answer was lost."""


class ApiError(AiosError):
    """The server refused a request; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # a validation error: name the first field at fault
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg")).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return str(detail)


def default_token(url: str = DEFAULT_URL) -> str | None:
    """``AIOS_TOKEN``, else the local admin token, which is only ever sent to a control
    plane on this machine (a loopback URL)."""
    token = os.environ.get("AIOS_TOKEN")
    if token:
        return token
    host = httpx.URL(url).host
    if host not in {"127.0.0.1", "localhost", "::1"}:
        return None
    home = Path(os.environ.get("AIOS_HOME") or Path.home() / ".aios")
    try:
        return (home / "admin.token").read_text().strip() or None
    except OSError:
        return None


class Client:
    """Submits and follows jobs, queues and pipelines on an AIOS control plane."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("AIOS_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else default_token(self.url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url + "/api/v1", headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call; a GET whose kept-alive connection the server closed as it was sent
        (``Server disconnected without sending a response``: the server's idle timeout
        and the request crossed) is sent once more on a new connection, as urllib3 does
        for idempotent methods. Nothing else is sent twice here (see :meth:`_create`)."""
        try:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.RemoteProtocolError:
                if method != "GET":
                    raise
                response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the control plane at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _message(response))
        return response

    def _create(self, path: str, **kwargs: Any) -> httpx.Response:
        """A POST that creates something, made once however often it is sent: with an
        ``Idempotency-Key`` of its own, sent again with the same key when its answer
        was lost (a dropped connection, a control plane restarting) or the control
        plane was busy, after each of :data:`RETRY_DELAYS`."""
        headers = {IDEMPOTENCY_KEY: uuid.uuid4().hex}
        for delay in (*RETRY_DELAYS, None):
            try:
                response = self._http.request("POST", path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                if delay is None:
                    raise ApiError(
                        0, f"cannot reach the control plane at {self.url}: {exc}"
                    ) from None
                time.sleep(delay)
                continue
            if response.status_code == 503 and delay is not None:
                time.sleep(delay)
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, _message(response))
            return response
        raise AssertionError("unreachable")

    # -- jobs -----------------------------------------------------------------------
    def submit(
        self,
        command: Sequence[str] | str | None = None,
        *,
        function: Callable[..., Any] | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str = "",
        cpus: float | str = 1,
        memory: int | str = "1G",
        gpus: int = 0,
        gpu_kind: str | None = None,
        replicas: int = 1,
        priority: int = 0,
        queue: str | None = None,
        after: Sequence[int] = (),
        env: Mapping[str, str] | None = None,
        time_limit: float | str | None = None,
        retries: int = 0,
        retry_backoff: float = 1.0,
        grace: float = 30.0,
        preemptible: bool = True,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        cache: bool = True,
        network: Literal["host", "none"] = "host",
        image: str | None = None,
        as_admin: bool = False,
    ) -> JobView:
        """Submits a command (argv list, or a shell string) or a Python function.

        ``inputs`` are dataset versions (``NAME@REF``) the job finds read-only at
        ``$AIOS_INPUTS/NAME``; ``outputs`` are datasets it publishes a new version of
        from ``$AIOS_OUTPUTS/NAME`` when it succeeds. With ``cache``, a run of the same
        command on the same input versions reuses the earlier run's outputs.
        ``network="none"`` leaves the job's sandbox a loopback of its own; ``image``
        runs it in an OCI image (a layout directory or a saved archive on the control
        plane's machine, ``PATH[:TAG]``); ``as_admin`` (admins only) gives its own token
        its submitter's admin rights instead of its queue's."""
        body: dict[str, Any] = {
            "name": name,
            "cpus": cpus,
            "memory": memory,
            "gpus": gpus,
            "gpu_kind": gpu_kind,
            "replicas": replicas,
            "priority": priority,
            "queue": queue,
            "after": list(after),
            "env": dict(env or {}),
            "time_limit": time_limit,
            "retries": retries,
            "retry_backoff": retry_backoff,
            "grace": grace,
            "preemptible": preemptible,
            "inputs": list(inputs),
            "outputs": list(outputs),
            "cache": cache,
            "network": network,
            "image": image,
            "as_admin": as_admin,
        }
        if function is not None:
            import cloudpickle

            payload = cloudpickle.dumps((function, tuple(args), dict(kwargs or {})))
            body["function"] = base64.b64encode(payload).decode()
            body["name"] = name or getattr(function, "__name__", "function")
        else:
            body["command"] = command if isinstance(command, str) else list(command or [])
        return JobView.model_validate(self._create("/jobs", json=body).json())

    def lineage(self, kind: Literal["dataset", "job", "model"], ref: str) -> LineageView:
        """The lineage graph around a dataset version, a job or a model version."""
        from aios.lineage.api import LineageView

        response = self._request("GET", f"/lineage/{kind}/{quote(ref, safe='@')}")
        return LineageView.model_validate(response.json())

    def submit_many(self, jobs: Sequence[Mapping[str, Any]]) -> list[JobView]:
        """Submits several jobs (each a JobSpec as a dict, e.g. ``{"command": ["true"],
        "cpus": 1}``) in one request; all are created or none."""
        response = self._create("/jobs/batch", json=[dict(j) for j in jobs])
        return [JobView.model_validate(j) for j in response.json()]

    def resubmit(self, job_id: int) -> JobView:
        """Submits job ``job_id`` again as a new job (same spec and environment)."""
        return JobView.model_validate(self._request("POST", f"/jobs/{job_id}/resubmit").json())

    def get(self, job_id: int) -> JobView:
        return JobView.model_validate(self._request("GET", f"/jobs/{job_id}").json())

    def jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        pipeline: int | None = None,
        limit: int = 100,
    ) -> list[JobView]:
        params = {"state": state, "queue": queue, "pipeline": pipeline, "limit": limit}
        response = self._request(
            "GET", "/jobs", params={k: v for k, v in params.items() if v is not None}
        )
        return [JobView.model_validate(j) for j in response.json()]

    def cancel(self, job_id: int) -> JobView:
        return JobView.model_validate(self._request("POST", f"/jobs/{job_id}/cancel").json())

    def wait(self, job_id: int, timeout: float | None = None, poll: float = 0.1) -> JobView:
        """Waits until the job ends and returns it; TimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.state in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            time.sleep(poll)

    def logs(
        self, job_id: int, follow: bool = False, stream: str = "stdout", replica: int = 0
    ) -> Iterator[str]:
        """The job's log as text chunks; with ``follow``, until the job ends."""
        params: dict[str, str | int | bool] = {
            "follow": follow,
            "stream": stream,
            "replica": replica,
        }
        try:
            with self._http.stream(
                "GET",
                f"/jobs/{job_id}/logs",
                params=params,
                timeout=None if follow else self._http.timeout,
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, _message(response))
                yield from response.iter_text()
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the control plane at {self.url}: {exc}") from None

    def events(self, job_id: int | None = None, since: int = 0) -> list[EventView]:
        """A job's events, or (``job_id`` None) the cluster's after event ``since``."""
        if job_id is None:
            response = self._request("GET", "/events", params={"since": since})
            return [EventView.model_validate(e) for e in response.json()]
        response = self._request("GET", f"/jobs/{job_id}/events")
        return [EventView.model_validate(e) for e in response.json()]

    def result(self, job_id: int) -> Any:
        """The return value of a function job that succeeded."""
        import cloudpickle

        return cloudpickle.loads(self._request("GET", f"/jobs/{job_id}/result").content)

    # -- datasets -------------------------------------------------------------------
    def dataset_shares(self, name: str) -> SharingView:
        """The queue dataset ``name`` belongs to and the queues it is shared with (its
        owner's members and admins may ask)."""
        from aios.lineage.sharing import SharingView

        response = self._request("GET", f"/datasets/{quote(name, safe='')}/shares")
        return SharingView.model_validate(response.json())

    def share_dataset(self, name: str, queue: str, read_only: bool = False) -> SharingView:
        """Lets the members of ``queue`` read dataset ``name`` as a job's input and,
        unless ``read_only``, publish versions of it as a job's output."""
        from aios.lineage.sharing import SharingView

        body = {"queue": queue, "read_only": read_only}
        response = self._request("POST", f"/datasets/{quote(name, safe='')}/shares", json=body)
        return SharingView.model_validate(response.json())

    def unshare_dataset(self, name: str, queue: str) -> None:
        """Takes the share of dataset ``name`` away from ``queue`` (jobs already
        submitted keep it)."""
        self._request("DELETE", f"/datasets/{quote(name, safe='')}/shares/{quote(queue, safe='')}")

    def assign_dataset(self, name: str, queue: str) -> SharingView:
        """Makes dataset ``name`` belong to ``queue`` (an admin only): how a dataset
        added to the repository with ``aios data add`` becomes a tenant's."""
        from aios.lineage.sharing import SharingView

        body = {"queue": queue}
        response = self._request("PUT", f"/datasets/{quote(name, safe='')}/owner", json=body)
        return SharingView.model_validate(response.json())

    # -- queues, nodes, users ---------------------------------------------------------
    def queues(self) -> list[QueueView]:
        return [QueueView.model_validate(q) for q in self._request("GET", "/queues").json()]

    def create_queue(
        self,
        name: str,
        quota: Mapping[str, float | str] | None = None,
        weight: float = 1.0,
        cohort: str | None = None,
        borrowing_limit: Mapping[str, float | str] | None = None,
    ) -> QueueView:
        body = {
            "name": name,
            "quota": None if quota is None else dict(quota),
            "weight": weight,
            "cohort": cohort,
            "borrowing_limit": dict(borrowing_limit or {}),
        }
        return QueueView.model_validate(self._request("POST", "/queues", json=body).json())

    def update_queue(self, name: str, **changes: Any) -> QueueView:
        response = self._request("PATCH", f"/queues/{name}", json=changes)
        return QueueView.model_validate(response.json())

    def nodes(self) -> list[NodeView]:
        return [NodeView.model_validate(n) for n in self._request("GET", "/nodes").json()]

    def create_token(
        self,
        name: str,
        tenant: str | None = None,
        admin: bool = False,
        expires: float | str | None = None,
    ) -> str:
        """Creates user ``name`` and returns its token; ``expires`` (seconds, ``30d``)
        bounds how long it works."""
        body = {"name": name, "tenant": tenant, "admin": admin, "expires": expires}
        return TokenView.model_validate(self._request("POST", "/tokens", json=body).json()).token

    def tokens(self) -> list[TokenListing]:
        """Your tokens and your queue's running jobs' own (an admin: every one)."""
        return [TokenListing.model_validate(t) for t in self._request("GET", "/tokens").json()]

    def revoke_token(self, token_id: int) -> TokenListing:
        return TokenListing.model_validate(self._request("DELETE", f"/tokens/{token_id}").json())

    def revoke_job_token(self, job_id: int) -> TokenListing:
        """Revokes a running job's own token (its end would)."""
        response = self._request("POST", f"/jobs/{job_id}/token/revoke")
        return TokenListing.model_validate(response.json())

    def whoami(self) -> WhoAmI:
        return WhoAmI.model_validate(self._request("GET", "/whoami").json())

    # -- pipelines --------------------------------------------------------------------
    def submit_pipeline(self, spec: PipelineSpec | Path) -> PipelineView:
        if isinstance(spec, Path):
            from aios.control.pipelines import load_pipeline

            spec = load_pipeline(spec)
        body = spec.model_dump(mode="json", exclude_unset=True)
        return PipelineView.model_validate(self._create("/pipelines", json=body).json())

    def pipeline(self, pipeline_id: int) -> PipelineView:
        return PipelineView.model_validate(self._request("GET", f"/pipelines/{pipeline_id}").json())

    def pipelines(self) -> list[PipelineView]:
        return [PipelineView.model_validate(p) for p in self._request("GET", "/pipelines").json()]

    def cancel_pipeline(self, pipeline_id: int) -> PipelineView:
        response = self._request("POST", f"/pipelines/{pipeline_id}/cancel")
        return PipelineView.model_validate(response.json())

    def wait_pipeline(
        self, pipeline_id: int, timeout: float | None = None, poll: float = 0.2
    ) -> PipelineView:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = self.pipeline(pipeline_id)
            if view.state in PIPELINE_TERMINAL:
                return view
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"pipeline {pipeline_id} still {view.state} after {timeout} s")
            time.sleep(poll)

    # -- models -----------------------------------------------------------------------
    def register_model(
        self,
        name: str,
        path: Path | str,
        fmt: str,
        *,
        from_job: int | None = None,
        dataset: str | None = None,
        metrics: Mapping[str, float] | None = None,
        to_onnx: bool = False,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        alias: str | None = None,
        tenant: str | None = None,
    ) -> ModelVersionView:
        """Uploads the model file or directory at ``path`` as the next version of model
        ``name`` (``fmt``: onnx, sklearn, torchscript or python) and returns it, with the
        signature the registry read from the model."""
        from aios.registry.transfer import packed

        path = Path(path)
        spec: dict[str, Any] = {
            "format": fmt,
            "filename": path.name,
            "from_job": from_job,
            "dataset": dataset,
            "metrics": dict(metrics or {}),
            "to_onnx": to_onnx,
            "description": description,
            "tags": dict(tags or {}),
            "alias": alias,
            "tenant": tenant,
        }
        with packed(path) as (kind, upload):
            spec["artifact"] = kind
            response = self._request(
                "POST",
                f"/models/{name}/versions",
                data={"spec": json.dumps(spec)},
                files={"artifact": (path.name, upload, "application/octet-stream")},
                timeout=REGISTER_TIMEOUT,
            )
        return ModelVersionView.model_validate(response.json())

    def models(self) -> list[ModelView]:
        return [ModelView.model_validate(m) for m in self._request("GET", "/models").json()]

    def model(self, name: str) -> ModelView:
        return ModelView.model_validate(self._request("GET", f"/models/{name}").json())

    def model_versions(self, name: str) -> list[ModelVersionView]:
        """The versions of model ``name``, newest first."""
        response = self._request("GET", f"/models/{name}/versions")
        return [ModelVersionView.model_validate(v) for v in response.json()]

    def model_version(self, name: str, ref: int | str = "latest") -> ModelVersionView:
        """Version ``ref`` of model ``name``: a number, an alias or ``latest``."""
        response = self._request("GET", f"/models/{name}/versions/{ref}")
        return ModelVersionView.model_validate(response.json())

    def download_model_artifact(self, name: str, ref: int | str, dest: Path) -> Path:
        """Downloads version ``ref``'s artifact to ``dest/<its file name>`` when ``dest``
        is a directory, else to ``dest``; returns that path. The file (or directory) is
        put there only once its sha256 matches the registry's."""
        from aios.registry.transfer import artifact_target, receive

        version = self.model_version(name, ref)
        target = artifact_target(Path(dest), version.filename)
        path = f"/models/{name}/versions/{version.version}/artifact"
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, _message(response))
                return receive(response.iter_bytes(), version, target)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the control plane at {self.url}: {exc}") from None

    def set_model_alias(self, name: str, alias: str, version: int) -> ModelView:
        """Points ``name@alias`` at ``version`` (creating or moving the alias)."""
        response = self._request(
            "PUT", f"/models/{name}/aliases/{alias}", json={"version": version}
        )
        return ModelView.model_validate(response.json())

    def remove_model_alias(self, name: str, alias: str) -> ModelView:
        response = self._request("DELETE", f"/models/{name}/aliases/{alias}")
        return ModelView.model_validate(response.json())

    def update_model_version(
        self,
        name: str,
        ref: int | str,
        *,
        description: str | None = None,
        tags: Mapping[str, str | None] | None = None,
    ) -> ModelVersionView:
        """Sets the description and merges ``tags`` in (a tag set to None is removed)."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = dict(tags)
        response = self._request("PATCH", f"/models/{name}/versions/{ref}", json=body)
        return ModelVersionView.model_validate(response.json())

    def delete_model_version(self, name: str, version: int) -> None:
        """Deletes a version; refused (409) while an alias or a deployment uses it."""
        self._request("DELETE", f"/models/{name}/versions/{version}")

    # -- deployments ------------------------------------------------------------------
    def deploy(self, model: str, **options: Any) -> DeploymentView:
        """Deploys ``model`` (``NAME@VERSION``); options as :class:`DeploymentSpec`
        (``replicas``, ``min_replicas``/``max_replicas``, ``canary="NAME@V:10"``, ``cpus``,
        ``memory``, ``gpus``, ``queue``, ``priority``, ``name``…)."""
        spec = DeploymentSpec.model_validate({"model": model, **options})
        body = spec.model_dump(exclude_none=True)
        return DeploymentView.model_validate(
            self._request("POST", "/deployments", json=body).json()
        )

    def update_deployment(self, name: str, model: str, **options: Any) -> DeploymentView:
        """Replaces deployment ``name``'s spec (as :meth:`deploy`); new versions or
        resources roll out without dropping requests."""
        spec = DeploymentSpec.model_validate({"model": model, "name": name, **options})
        body = spec.model_dump(exclude_none=True)
        response = self._request("PUT", f"/deployments/{name}", json=body)
        return DeploymentView.model_validate(response.json())

    def deployments(self) -> list[DeploymentView]:
        return [
            DeploymentView.model_validate(d) for d in self._request("GET", "/deployments").json()
        ]

    def deployment(self, name: str) -> DeploymentView:
        return DeploymentView.model_validate(self._request("GET", f"/deployments/{name}").json())

    def set_traffic(
        self, name: str, weights: Mapping[int, int] | Mapping[str, int]
    ) -> DeploymentView:
        """Shifts traffic: ``{3: 90, 4: 10}`` (percent by version, adding up to 100)."""
        body = {"weights": {str(k): v for k, v in weights.items()}}
        response = self._request("PATCH", f"/deployments/{name}/traffic", json=body)
        return DeploymentView.model_validate(response.json())

    def undeploy(self, name: str) -> None:
        self._request("DELETE", f"/deployments/{name}")

    def wait_deployment(self, name: str, ready: int, timeout: float = 60.0) -> DeploymentView:
        """Waits until ``ready`` replicas of ``name`` take requests."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.deployment(name)
            if sum(r.ready for r in view.replicas) >= ready:
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployment {name}: {view.message} after {timeout:g} s")
            time.sleep(0.2)

    # -- the cluster's history and its scheduling policy ------------------------------
    def history(self, since: float | None = None, limit: int | None = None) -> History:
        """The jobs submitted in the last ``since`` seconds (default: a week) that ran
        and ended, the most recent ``limit`` of them, with the nodes and queues as they
        are now: the input of a what-if replay (admins only)."""
        from pydantic import TypeAdapter

        from aios.simulator.history import History

        params = {
            key: value for key, value in (("since", since), ("limit", limit)) if value is not None
        }
        response = self._request("GET", "/history/trace", params=params)
        return TypeAdapter(History).validate_python(response.json())

    def policy(self) -> PolicyView:
        """The scheduling policy in force, the configured one, and the choices."""
        from aios.control.history_api import PolicyView

        return PolicyView.model_validate(self._request("GET", "/policy").json())

    def set_policy(self, policy: str) -> PolicyView:
        """Switches the live scheduling policy (``las``, ``fifo+backfill``, …; admins
        only); the switch is a ``policy_changed`` event."""
        from aios.control.history_api import PolicyView

        response = self._request("PUT", "/policy", json={"policy": policy})
        return PolicyView.model_validate(response.json())
