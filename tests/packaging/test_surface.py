"""The public surface of aios.packaging: a change here is a change for every user."""

from __future__ import annotations

import aios.packaging


def test_packaging_public_names() -> None:
    assert sorted(aios.packaging.__all__) == sorted(
        [
            "EXPORTABLE_FORMATS",
            "DockerContext",
            "EdgeReport",
            "ModelArtifact",
            "OutputDifference",
            "ServingResources",
            "Variant",
            "export_edge",
            "manifests",
            "model_format",
            "pinned_requirements",
            "quantize_int8",
            "sample_inputs",
            "serve_command",
            "to_onnx",
            "write_docker_context",
            "write_kubernetes_manifests",
            "write_wheel",
        ]
    )
