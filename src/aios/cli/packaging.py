"""``aios model package`` and ``aios model export``: a registered model version as a
container build context, Kubernetes manifests, or an edge bundle.

Each command asks the registry for the version (an unknown model or version is the
control plane's 404: one line, exit code 2), checks its destination before it
downloads anything, downloads the artifact into a temporary directory, and hands it to
:mod:`aios.packaging`, which writes each directory whole or not at all.

numpy, the SDK and :mod:`aios.packaging` are imported when a command runs, so
``aios --help`` does not pay for them. cli/main.py registers them under ``model``
like every other command: ``(model_app, "package", packaging.package)`` and
``(model_app, "export", packaging.export)`` in its ``_COMMANDS``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aios.cli.remote import connect
from aios.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np

    from aios.client import Client
    from aios.packaging import ModelArtifact
    from aios.registry.specs import ModelVersionView, SignatureView

__all__ = ["export", "package", "read_sample"]

ModelRef = Annotated[
    str,
    typer.Argument(
        metavar="NAME@VERSION",
        help="The model version: NAME@3, NAME@production, or NAME (the latest).",
        show_default=False,
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Replace the contents of a non-empty DIR.")]


def package(
    ctx: typer.Context,
    model: ModelRef,
    docker: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Write a Docker build context here.", show_default=False),
    ] = None,
    kubernetes: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Write a Deployment, a Service and a KServe InferenceService here.",
            show_default=False,
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="The image the manifests run (default: aios-NAME:VERSION)."),
    ] = None,
    replicas: Annotated[int, typer.Option(help="Replicas of the server.")] = 1,
    cpus: Annotated[str, typer.Option(help="Cores per replica: 2, 0.5 or 500m.")] = "1",
    mem: Annotated[str, typer.Option(help="Memory per replica: 512M, 4G.")] = "1G",
    gpus: Annotated[int, typer.Option(help="GPUs per replica (nvidia.com/gpu).")] = 0,
    namespace: Annotated[
        str | None, typer.Option(help="Namespace of the manifests (default: none set).")
    ] = None,
    force: Force = False,
) -> None:
    """Packages a model version to run elsewhere: a Docker build context whose
    container runs ``aios serve`` on it, and/or Kubernetes manifests for that image.

    Example: ``aios model package iris@3 --docker ./iris-image --kubernetes ./iris-k8s``
    """
    from aios.packaging import ServingResources, write_docker_context, write_kubernetes_manifests
    from aios.packaging.target import check_destination

    if docker is None and kubernetes is None:
        raise InvalidInput("say what to write: --docker DIR, --kubernetes DIR, or both")
    if docker is not None and kubernetes is not None and docker.resolve() == kubernetes.resolve():
        raise InvalidInput("--docker and --kubernetes need two different directories")
    for destination in (docker, kubernetes):
        if destination is not None:
            check_destination(destination, force=force)
    with connect(ctx) as client, tempfile.TemporaryDirectory(prefix="aios-package-") as scratch:
        artifact = _fetch(client, _version(client, model), Path(scratch))
        resources = ServingResources(
            image=image or artifact.image,
            replicas=replicas,
            cpus=cpus,
            memory=mem,
            gpus=gpus,
            namespace=namespace,
        )
        if docker is not None:
            context = write_docker_context(artifact, docker, force=force)
            typer.echo(f"wrote {context.directory}: docker build -t {resources.image} {docker}")
        if kubernetes is not None:
            paths = write_kubernetes_manifests(artifact, resources, kubernetes, force=force)
            typer.echo(f"wrote {', '.join(str(path) for path in paths)}")


def export(
    ctx: typer.Context,
    model: ModelRef,
    edge: Annotated[
        Path,
        typer.Option(
            metavar="DIR",
            help="Write the ONNX model, runner.py and report.json here.",
            show_default=False,
        ),
    ],
    int8: Annotated[
        bool, typer.Option("--int8", help="Quantize the weights to int8 (dynamic).")
    ] = False,
    sample: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Inputs to measure on: .npy (one input) or .npz (by name); "
            "default: random inputs that fit the signature.",
            show_default=False,
        ),
    ] = None,
    runs: Annotated[
        int, typer.Option(min=1, help="Timed runs per variant (the median is reported).")
    ] = 50,
    force: Force = False,
) -> None:
    """Exports a model version for the edge: ONNX (converted from scikit-learn with
    skl2onnx), a standalone runner that needs only onnxruntime and numpy, and a report
    of size, latency and the largest output difference against the original.

    Example: ``aios model export digits@2 --edge ./digits-edge --int8``
    """
    from aios.packaging import export_edge
    from aios.packaging.conversion import check_exportable
    from aios.packaging.target import check_destination

    check_destination(edge, force=force)
    with connect(ctx) as client, tempfile.TemporaryDirectory(prefix="aios-export-") as scratch:
        view = _version(client, model)
        check_exportable(view.format, f"{view.name}@{view.version}")
        inputs = None if sample is None else read_sample(sample, view.signature)
        artifact = _fetch(client, view, Path(scratch))
        report = export_edge(artifact, edge, int8=int8, sample=inputs, runs=runs, force=force)
    typer.echo(report.table())
    typer.echo(f"\nwrote {edge}: python {edge / 'runner.py'} INPUT.npy")


def read_sample(path: Path, signature: SignatureView) -> dict[str, np.ndarray[Any, Any]]:
    """The inputs in ``path`` (.npy for a model with one input, .npz by name), cast to
    the datatypes of ``signature`` where numpy can do so without changing kind (float64
    to FP32 is fine, float to INT64 is not). Raises InvalidInput naming the file and what
    does not fit."""
    import numpy as np

    from aios.serving.tensors import numpy_dtype

    names = [spec.name for spec in signature.inputs]
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        else:
            if len(names) != 1:
                raise InvalidInput(
                    f"--sample {path}: the model takes {len(names)} inputs ({', '.join(names)});"
                    " give them by name in an .npz file"
                )
            arrays = {names[0]: np.load(path, allow_pickle=False)}
    except (OSError, ValueError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"--sample {path}: cannot read it as numpy arrays: {exc}") from None
    cast: dict[str, np.ndarray[Any, Any]] = {}
    for spec in signature.inputs:
        if spec.name not in arrays:
            raise InvalidInput(f"--sample {path}: no array named {spec.name!r}")
        dtype = numpy_dtype(spec.datatype, tensor=spec.name)
        array = arrays[spec.name]
        if not np.can_cast(array.dtype, dtype, casting="same_kind"):
            raise InvalidInput(
                f"--sample {path}: {spec.name!r} is {array.dtype}, the model takes {spec.datatype}"
            )
        cast[spec.name] = array.astype(dtype)
    return cast


def _version(client: Client, reference: str) -> ModelVersionView:
    """The registry's view of ``NAME@REF``; the control plane's 404 for an unknown one."""
    from aios.registry.refs import parse_reference

    name, ref = parse_reference(reference)
    return client.model_version(name, ref)


def _fetch(client: Client, view: ModelVersionView, scratch: Path) -> ModelArtifact:
    """The artifact of ``view`` downloaded into ``scratch``, as packaging takes it."""
    from aios.packaging import ModelArtifact, model_format

    path = client.download_model_artifact(view.name, view.version, scratch)
    return ModelArtifact(view.name, view.version, model_format(view.format), path)
