"""``aios model package --kubernetes``: manifests that run the packaged server.

Three objects, each in its own file, all running the image that ``--docker`` builds:

- ``deployment.yaml``: an ``apps/v1`` Deployment, its container's requests and limits
  from the deployment's cpus and memory (equal, for the Guaranteed QoS class) and
  ``nvidia.com/gpu`` from its gpus, readiness on ``/v2/health/ready`` and liveness on
  ``/v2/health/live``, non-root;
- ``service.yaml``: a ClusterIP Service on port 80 in front of it;
- ``inferenceservice.yaml``: a KServe ``serving.kserve.io/v1beta1`` InferenceService
  whose predictor is a custom container running the same server, for a cluster with
  KServe instead of bare Deployments.

The manifests are plain data (:func:`manifests`) before they are YAML, so tests can
validate them against the Kubernetes schemas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aios.errors import InvalidInput
from aios.packaging.docker import CONTAINER_PORT, HEALTH_PATH, USER_ID
from aios.packaging.model import ModelArtifact
from aios.packaging.target import staged_directory
from aios.resources import parse_cpu, parse_memory

__all__ = [
    "GPU_RESOURCE",
    "LIVE_PATH",
    "MANIFEST_FILES",
    "ServingResources",
    "deployment_manifest",
    "inference_service_manifest",
    "manifests",
    "service_manifest",
    "write_kubernetes_manifests",
]

Manifest = dict[str, Any]
"""One Kubernetes object as the API server reads it (JSON-shaped)."""

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource NVIDIA's device plugin advertises."""
LIVE_PATH = "/v2/health/live"
SERVICE_PORT = 80
MANIFEST_FILES = ("deployment.yaml", "service.yaml", "inferenceservice.yaml")
_MEBI = 1 << 20


@dataclass(frozen=True, slots=True)
class ServingResources:
    """How a packaged model runs: its image, replicas, and each replica's cpus (``2``,
    ``500m``), memory (``512M``, ``4G``) and whole GPUs."""

    image: str
    replicas: int = 1
    cpus: str = "1"
    memory: str = "1G"
    gpus: int = 0
    namespace: str | None = None

    def __post_init__(self) -> None:
        if not self.image.strip() or any(c.isspace() for c in self.image):
            raise InvalidInput(f"--image: not an image reference: {self.image!r}")
        if self.replicas < 1:
            raise InvalidInput(f"--replicas must be 1 or more, got {self.replicas}")
        if self.gpus < 0:
            raise InvalidInput(f"--gpus must not be negative, got {self.gpus}")
        if parse_cpu(self.cpus) == 0:
            raise InvalidInput(f"--cpus must be more than 0, got {self.cpus!r}")
        if parse_memory(self.memory) < _MEBI:
            raise InvalidInput(f"--memory must be at least 1Mi, got {self.memory!r}")

    def container_resources(self) -> Manifest:
        """The container's ``resources``: Kubernetes quantities (``1500m``, ``4096Mi``)."""
        millicores = parse_cpu(self.cpus)
        cpu = str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"
        memory = -(-parse_memory(self.memory) // _MEBI)  # whole MiB, rounded up
        amounts: dict[str, str] = {"cpu": cpu, "memory": f"{memory}Mi"}
        if self.gpus:
            amounts[GPU_RESOURCE] = str(self.gpus)
        return {"requests": dict(amounts), "limits": dict(amounts)}


def manifests(model: ModelArtifact, resources: ServingResources) -> dict[str, Manifest]:
    """The Deployment, Service and InferenceService of ``model``, by file name."""
    return dict(
        zip(
            MANIFEST_FILES,
            (
                deployment_manifest(model, resources),
                service_manifest(model, resources),
                inference_service_manifest(model, resources),
            ),
            strict=True,
        )
    )


def write_kubernetes_manifests(
    model: ModelArtifact, resources: ServingResources, destination: Path, *, force: bool = False
) -> list[Path]:
    """Writes :data:`MANIFEST_FILES` into ``destination`` and returns their paths.

    Raises InvalidInput when ``destination`` is a non-empty directory and ``force`` is
    false; nothing is written then.
    """
    objects = manifests(model, resources)
    with staged_directory(destination, force=force) as staging:
        for name, manifest in objects.items():
            (staging / name).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return [destination / name for name in objects]


def deployment_manifest(model: ModelArtifact, resources: ServingResources) -> Manifest:
    """An ``apps/v1`` Deployment of ``resources.replicas`` servers of ``model``."""
    labels = _selector(model)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(model, resources),
        "spec": {
            "replicas": resources.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": _labels(model)},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": USER_ID,
                        "runAsGroup": USER_ID,
                    },
                    # The server drains queued requests on SIGTERM before it exits.
                    "terminationGracePeriodSeconds": 30,
                    "containers": [_container(resources, name="server")],
                },
            },
        },
    }


def service_manifest(model: ModelArtifact, resources: ServingResources) -> Manifest:
    """A ClusterIP Service: port 80 to the servers' named port ``http``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(model, resources),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(model),
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def inference_service_manifest(model: ModelArtifact, resources: ServingResources) -> Manifest:
    """A KServe InferenceService whose predictor runs the packaged image.

    A custom container rather than ``modelFormat`` + ``storageUri``: KServe's own
    runtimes would need the artifact in object storage and would serve it with other
    code; this one serves it with the server that was tested, from the image.
    """
    predictor: Manifest = {
        "minReplicas": resources.replicas,
        "maxReplicas": resources.replicas,
        "containers": [_container(resources, name="kserve-container")],
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(model, resources),
        "spec": {"predictor": predictor},
    }


def _container(resources: ServingResources, *, name: str) -> Manifest:
    """The server's container; its command is the image's CMD (one place says it)."""
    return {
        "name": name,
        "image": resources.image,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "resources": resources.container_resources(),
        "readinessProbe": _probe(HEALTH_PATH, period=5),
        "livenessProbe": _probe(LIVE_PATH, period=10),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _probe(path: str, *, period: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": CONTAINER_PORT},
        "initialDelaySeconds": 5,
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def _metadata(model: ModelArtifact, resources: ServingResources) -> Manifest:
    metadata: Manifest = {"name": model.resource_name, "labels": _labels(model)}
    if resources.namespace:
        metadata["namespace"] = resources.namespace
    return metadata


def _selector(model: ModelArtifact) -> dict[str, str]:
    return {"app.kubernetes.io/name": model.resource_name}


def _labels(model: ModelArtifact) -> dict[str, str]:
    """Recommended labels, and the model's name and version for ``kubectl -l``."""
    return {
        **_selector(model),
        "app.kubernetes.io/component": "predictor",
        "app.kubernetes.io/managed-by": "aios",
        "aios.ai/model": model.slug,
        "aios.ai/version": str(model.version),
    }
