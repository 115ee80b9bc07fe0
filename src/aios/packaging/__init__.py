"""Packaging: one model version as a container build context, Kubernetes manifests, or
an edge bundle that runs with only onnxruntime and numpy.

Everything here works on a :class:`ModelArtifact` (a name, a version, a format and a
local path), so it needs no registry; ``aios model package`` and ``aios model export``
(:mod:`aios.cli.packaging`) fetch a registered version and call these functions. Each
writes its directory whole or not at all, and refuses a non-empty one unless forced.
"""

from aios.packaging.conversion import EXPORTABLE_FORMATS, quantize_int8, to_onnx
from aios.packaging.docker import DockerContext, serve_command, write_docker_context
from aios.packaging.edge import export_edge, sample_inputs
from aios.packaging.kubernetes import ServingResources, manifests, write_kubernetes_manifests
from aios.packaging.model import ModelArtifact, model_format
from aios.packaging.report import EdgeReport, OutputDifference, Variant
from aios.packaging.requirements import pinned_requirements
from aios.packaging.wheel import write_wheel

__all__ = [
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
