"""``--kubernetes``: the Deployment and Service validate against the Kubernetes schemas
(kubernetes-validate, strict), and the InferenceService against the schema stated here,
whose predictor container is checked against Kubernetes' own Container schema."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from aios.errors import InvalidInput
from aios.packaging import ModelArtifact, ServingResources, manifests, write_kubernetes_manifests

KUBERNETES = "1.37"
"""The newest schema version kubernetes-validate 1.37 ships."""
SCHEMAS = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES}.0-local-strict"
DEFINITIONS = "https://kubernetes.io/api/_definitions.json#/$defs/"
"""Kubernetes' definitions, by the $id of kubernetes-validate's ``_definitions.json``."""

INFERENCE_SERVICE_SCHEMA: dict[str, Any] = {
    # The part of KServe's InferenceService CRD (serving.kserve.io/v1beta1) that these
    # manifests use, after its openAPIV3Schema: a predictor is a PodSpec (containers)
    # plus KServe's ComponentExtensionSpec (minReplicas, maxReplicas). Unknown fields
    # are refused, as a strict Kubernetes schema refuses them; the predictor's
    # containers and the metadata are Kubernetes' own definitions.
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {"$ref": DEFINITIONS + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": {
            "type": "object",
            "required": ["predictor"],
            "additionalProperties": False,
            "properties": {
                "predictor": {
                    "type": "object",
                    "required": ["containers"],
                    "additionalProperties": False,
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "containers": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1,
                            "items": {"$ref": DEFINITIONS + "io.k8s.api.core.v1.Container"},
                        },
                    },
                },
            },
        },
    },
}


def validate_inference_service(manifest: dict[str, Any]) -> None:
    """Raises jsonschema's ValidationError when ``manifest`` breaks the schema above."""
    import jsonschema  # type: ignore[import-untyped]

    definitions = json.loads((SCHEMAS / "_definitions.json").read_text())
    registry: Registry[Any] = Resource.from_contents(definitions) @ Registry()
    jsonschema.Draft202012Validator(INFERENCE_SERVICE_SCHEMA, registry=registry).validate(manifest)


@pytest.fixture
def gpu_resources() -> ServingResources:
    return ServingResources(
        image="registry.example/iris:3", replicas=2, cpus="1500m", memory="2G", gpus=1
    )


def test_deployment_and_service_validate_against_kubernetes(
    sklearn_model: ModelArtifact, gpu_resources: ServingResources
) -> None:
    objects = manifests(sklearn_model, gpu_resources)
    for name in ("deployment.yaml", "service.yaml"):
        assert kubernetes_validate.validate(objects[name], KUBERNETES, strict=True) == KUBERNETES


def test_inference_service_validates_against_the_stated_schema(
    sklearn_model: ModelArtifact, gpu_resources: ServingResources
) -> None:
    validate_inference_service(manifests(sklearn_model, gpu_resources)["inferenceservice.yaml"])


def test_stated_schema_refuses_what_kserve_refuses(
    sklearn_model: ModelArtifact, gpu_resources: ServingResources
) -> None:
    """The schema is not a rubber stamp: a misspelt field or a bad container fails."""
    import jsonschema

    manifest = manifests(sklearn_model, gpu_resources)["inferenceservice.yaml"]
    manifest["spec"]["predictor"]["minReplica"] = 1
    with pytest.raises(jsonschema.ValidationError, match="minReplica"):
        validate_inference_service(manifest)
    manifest = manifests(sklearn_model, gpu_resources)["inferenceservice.yaml"]
    manifest["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(jsonschema.ValidationError):
        validate_inference_service(manifest)


def test_resources_come_from_the_deployment_with_a_gpu_limit(
    sklearn_model: ModelArtifact, gpu_resources: ServingResources
) -> None:
    """cpus and memory as Kubernetes quantities, requests equal to limits, and the
    GPUs as nvidia.com/gpu, in both the Deployment and the InferenceService."""
    objects = manifests(sklearn_model, gpu_resources)
    deployment = objects["deployment.yaml"]
    predictor = objects["inferenceservice.yaml"]["spec"]["predictor"]
    expected = {"cpu": "1500m", "memory": "2048Mi", "nvidia.com/gpu": "1"}
    for container in (
        deployment["spec"]["template"]["spec"]["containers"][0],
        predictor["containers"][0],
    ):
        assert container["resources"] == {"requests": expected, "limits": expected}
        assert container["image"] == "registry.example/iris:3"
    assert deployment["spec"]["replicas"] == 2
    assert predictor["minReplicas"] == predictor["maxReplicas"] == 2


def test_no_gpu_limit_without_gpus(sklearn_model: ModelArtifact) -> None:
    objects = manifests(sklearn_model, ServingResources(image="iris:3", cpus="2", memory="512M"))
    container = objects["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "512Mi"}


def test_probes_ask_the_v2_health_endpoints(
    sklearn_model: ModelArtifact, gpu_resources: ServingResources
) -> None:
    objects = manifests(sklearn_model, gpu_resources)
    for container in (
        objects["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0],
        objects["inferenceservice.yaml"]["spec"]["predictor"]["containers"][0],
    ):
        assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
        assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
        assert container["ports"][0]["containerPort"] == 8080


def test_service_selects_the_deployments_pods(
    sklearn_model: ModelArtifact, gpu_resources: ServingResources
) -> None:
    objects = manifests(sklearn_model, gpu_resources)
    pod_labels = objects["deployment.yaml"]["spec"]["template"]["metadata"]["labels"]
    selector = objects["service.yaml"]["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert objects["deployment.yaml"]["spec"]["selector"]["matchLabels"] == selector
    assert objects["deployment.yaml"]["metadata"]["name"] == "iris-v3"


def test_files_are_written_as_yaml_that_reads_back(
    tmp_path: Path, sklearn_model: ModelArtifact, gpu_resources: ServingResources
) -> None:
    paths = write_kubernetes_manifests(sklearn_model, gpu_resources, tmp_path / "k8s")
    expected = manifests(sklearn_model, gpu_resources)
    assert [path.name for path in paths] == list(expected)
    for path in paths:
        assert yaml.safe_load(path.read_text()) == expected[path.name]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("replicas", 0, "--replicas"),
        ("gpus", -1, "--gpus"),
        ("cpus", "lots", "cpu"),
        ("cpus", "0", "--cpus"),
        ("memory", "12", "--memory"),
        ("image", "two words", "--image"),
    ],
)
def test_bad_resources_are_refused_naming_the_option(
    field: str, value: object, message: str
) -> None:
    arguments: dict[str, Any] = {"image": "iris:3", field: value}
    with pytest.raises(InvalidInput, match=message):
        ServingResources(**arguments)


def test_object_names_are_dns_labels(tmp_path: Path) -> None:
    """A registry name with capitals, dots and underscores becomes a valid object name."""
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(b"")
    model = ModelArtifact("My_Model.v2", 12, "onnx", artifact)
    assert model.resource_name == "my-model-v2-v12"
    objects = manifests(model, ServingResources(image="m:12"))
    kubernetes_validate.validate(objects["deployment.yaml"], KUBERNETES, strict=True)
