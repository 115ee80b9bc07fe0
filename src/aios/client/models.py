"""The SDK's calls on the model registry and on deployments."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from aios.client.transport import ApiError, Transport, error_message
from aios.deployments.specs import DeploymentSpec, DeploymentView
from aios.registry.specs import ModelVersionView, ModelView

__all__ = ["ModelsApi"]

REGISTER_TIMEOUT = 900.0
"""Seconds a registration may take: the upload, then loading (and converting) it."""


class ModelsApi(Transport):
    """Registers, reads and deploys models; the base of :class:`~aios.client.Client`."""

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
                    raise ApiError(response.status_code, error_message(response))
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
