"""The Python SDK: :class:`Client` speaks the REST API with httpx.

``Client()`` finds the server in ``AIOS_URL`` (default ``http://127.0.0.1:8470``) and
its token in ``AIOS_TOKEN``, else in ``$AIOS_HOME/admin.token`` when readable (the
single-user default). Errors from the server raise :class:`ApiError` with its message.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx

from aios.client.models import ModelsApi
from aios.client.transport import DEFAULT_URL, ApiError, default_token, error_message
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

if TYPE_CHECKING:
    from aios.control.history_api import PolicyView
    from aios.lineage.api import LineageView
    from aios.lineage.sharing import SharingView
    from aios.simulator.history import History

__all__ = ["DEFAULT_URL", "PIPELINE_TERMINAL", "TERMINAL", "ApiError", "Client", "default_token"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "upstream_failed", "unschedulable"})
PIPELINE_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class Client(ModelsApi):
    """Submits and follows jobs, queues, pipelines, models and deployments on an AIOS
    control plane."""

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
                    raise ApiError(response.status_code, error_message(response))
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
