"""``aios model register|ls|show|versions|alias|unalias|tag|delete|download``.

A model version is named as ``NAME@3`` (a number), ``NAME@production`` (an alias) or
``NAME`` (the latest version). Each command parses its arguments, makes one or a few
calls of :class:`~aios.client.Client` and prints the answer; the registry checks
everything it is sent. ``aios model register`` prints only ``NAME@VERSION``, for
``REF=$(aios model register …)``.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aios.cli.remote import connect
from aios.cli.render import stdout_console, timestamp
from aios.errors import InvalidInput
from aios.registry.refs import LATEST, parse_reference
from aios.resources.quantity import format_bytes

if TYPE_CHECKING:
    from aios.registry.specs import ModelVersionView, TensorView

__all__ = [
    "Format",
    "alias",
    "delete",
    "download",
    "list_models",
    "parse_pairs",
    "register",
    "show",
    "tag",
    "unalias",
    "versions",
]


class Format(StrEnum):
    """The model formats a serving replica loads."""

    ONNX = "onnx"
    SKLEARN = "sklearn"
    TORCHSCRIPT = "torchscript"
    PYTHON = "python"


def parse_pairs(option: str, pairs: list[str]) -> dict[str, str]:
    """``["k=v", …]`` as a mapping; raises InvalidInput naming ``option`` and the pair
    without ``=``."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option}: expected KEY=VALUE, got {pair!r}")
        parsed[key] = value
    return parsed


def _metrics(pairs: list[str]) -> dict[str, float]:
    metrics = {}
    for key, value in parse_pairs("--metric", pairs).items():
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"--metric: {key}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise InvalidInput(f"--metric: {key}={value} is not a finite number")
        metrics[key] = number
    return metrics


def _number(text: str, option: str) -> tuple[str, int]:
    """``NAME@3`` as the name and version number; InvalidInput for an alias or none."""
    name, ref = parse_reference(text)
    if not ref.isdigit():
        raise InvalidInput(f"{option}: name a version number ({name}@3), not {ref!r}")
    return name, int(ref)


def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model; created with its first version.")],
    path: Annotated[Path, typer.Argument(help="The model file, or a directory.")],
    format_: Annotated[Format, typer.Option("--format", help="How the model is stored.")],
    from_job: Annotated[
        int | None, typer.Option(min=1, help="The job that produced the model (lineage).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="The dataset version it was trained on: NAME@VERSION.")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="A metric as NAME=NUMBER (repeatable).")
    ] = None,
    to_onnx: Annotated[
        bool, typer.Option("--to-onnx", help="Convert a scikit-learn model to ONNX first.")
    ] = False,
    alias_: Annotated[
        str | None, typer.Option("--alias", help="Point this alias at the new version.")
    ] = None,
    tag_: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeatable).")] = None,
    description: Annotated[str, typer.Option(help="What the version is.")] = "",
    tenant: Annotated[
        str | None, typer.Option(help="The tenant of a new model (an admin's choice).")
    ] = None,
) -> None:
    """Registers PATH as the next version of model NAME and prints NAME@VERSION.

    Example: ``aios model register iris model.onnx --format onnx --metric accuracy=0.97``
    """
    if parse_reference(name) != (name, LATEST):
        raise InvalidInput(f"{name!r} is not a model name (letters, digits, _.-)")
    metrics = _metrics(metric or [])
    tags = parse_pairs("--tag", tag_ or [])
    with connect(ctx) as client:
        version = client.register_model(
            name,
            path,
            format_.value,
            from_job=from_job,
            dataset=dataset,
            metrics=metrics,
            to_onnx=to_onnx,
            description=description,
            tags=tags,
            alias=alias_,
            tenant=tenant,
        )
    typer.echo(f"{version.name}@{version.version}")


def list_models(ctx: typer.Context) -> None:
    """Lists the models you may see: latest version, how many, and aliases."""
    with connect(ctx) as client:
        models = client.models()
    if not models:
        typer.echo("no models", err=True)
        return
    table = Table()
    for column in ("model", "tenant", "latest", "versions", "aliases", "owner", "created"):
        table.add_column(column, no_wrap=True)
    for model in models:
        table.add_row(
            escape(model.name),
            escape(model.tenant),
            "" if model.latest is None else str(model.latest),
            str(model.versions),
            escape(" ".join(f"{a}→{v}" for a, v in model.aliases.items())),
            escape(model.owner),
            timestamp(model.created_at),
        )
    stdout_console().print(table)


def _tensors(title: str, tensors: list[TensorView]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("name", "datatype", "shape"):
        table.add_column(column, no_wrap=True)
    for tensor in tensors:
        table.add_row(escape(tensor.name), tensor.datatype, str(tensor.shape))
    return table


def _facts(version: ModelVersionView) -> dict[str, str]:
    conversion = version.conversion
    return {
        "format": version.format,
        "artifact": f"{version.artifact} {escape(version.filename)}, {format_bytes(version.size)}B",
        "sha256": version.sha256,
        "tenant": escape(version.tenant),
        "aliases": escape(", ".join(version.aliases)),
        "description": escape(version.description),
        "metrics": ", ".join(f"{k}={v:g}" for k, v in version.metrics.items()),
        "tags": escape(", ".join(f"{k}={v}" for k, v in version.tags.items())),
        "from job": "" if version.from_job is None else str(version.from_job),
        "dataset": escape(version.dataset or ""),
        "converted": ""
        if conversion is None
        else f"from {conversion.source_format} ({conversion.converter}), max difference "
        f"{conversion.max_difference:.3g} on {conversion.rows} rows",
        "created": f"{timestamp(version.created_at)} by {escape(version.created_by)}",
    }


def show(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME[@V|@ALIAS]", help="The version.")],
) -> None:
    """Shows one version: artifact, signature, metrics, tags and lineage."""
    name, ref = parse_reference(reference)
    with connect(ctx) as client:
        version = client.model_version(name, ref)
    out = stdout_console()
    out.print(f"[bold]model {escape(version.name)}[/bold] version {version.version}")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in _facts(version).items():
        if value:
            grid.add_row(key, value)
    out.print(grid)
    out.print(_tensors("inputs", version.signature.inputs))
    out.print(_tensors("outputs", version.signature.outputs))


def versions(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The model.")]) -> None:
    """Lists the versions of a model, newest first."""
    name, _ = parse_reference(name)
    with connect(ctx) as client:
        views = client.model_versions(name)
    if not views:
        typer.echo(f"model {name} has no versions", err=True)
        return
    table = Table()
    for column in ("version", "format", "size", "aliases", "metrics", "from job", "created"):
        table.add_column(column, no_wrap=True)
    table.add_column("description")
    for view in views:
        table.add_row(
            str(view.version),
            view.format,
            f"{format_bytes(view.size)}B",
            escape(", ".join(view.aliases)),
            ", ".join(f"{k}={v:g}" for k, v in view.metrics.items()),
            "" if view.from_job is None else str(view.from_job),
            timestamp(view.created_at),
            escape(view.description),
        )
    stdout_console().print(table)


def alias(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME@V", help="The version.")],
    name: Annotated[str, typer.Argument(metavar="ALIAS", help="The alias to point at it.")],
) -> None:
    """Points NAME@ALIAS at a version (creating the alias, or moving it at once)."""
    model, ref = parse_reference(reference)
    with connect(ctx) as client:
        number = int(ref) if ref.isdigit() else client.model_version(model, ref).version
        client.set_model_alias(model, name, number)
    typer.echo(f"{model}@{name} → version {number}")


def unalias(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME@ALIAS", help="The alias.")],
) -> None:
    """Removes an alias (the version stays)."""
    model, ref = parse_reference(reference)
    if ref == LATEST or ref.isdigit():
        raise InvalidInput(f"{reference!r}: name an alias (NAME@production), not a version")
    with connect(ctx) as client:
        client.remove_model_alias(model, ref)
    typer.echo(f"{model}@{ref} removed")


def tag(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME[@V]", help="The version.")],
    tags: Annotated[
        list[str] | None, typer.Argument(metavar="[KEY=VALUE]...", help="Tags to set.")
    ] = None,
    remove: Annotated[list[str] | None, typer.Option(help="A tag to remove (repeatable).")] = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
) -> None:
    """Sets (or removes) tags of a version, and its description."""
    name, ref = parse_reference(reference)
    changes: dict[str, str | None] = dict(parse_pairs("tag", tags or []))
    changes.update(dict.fromkeys(remove or []))
    if not changes and description is None:
        raise InvalidInput("tag: give KEY=VALUE, --remove KEY or --description")
    with connect(ctx) as client:
        version = client.update_model_version(
            name, ref, description=description, tags=changes or None
        )
    shown = ", ".join(f"{k}={v}" for k, v in version.tags.items()) or "no tags"
    typer.echo(f"{version.name}@{version.version}: {shown}")


def delete(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME@V", help="The version.")],
) -> None:
    """Deletes a version (refused while an alias or a deployment uses it)."""
    name, number = _number(reference, "delete")
    with connect(ctx) as client:
        client.delete_model_version(name, number)
    typer.echo(f"{name}@{number} deleted")


def download(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME[@V|@ALIAS]", help="The version.")],
    dest: Annotated[Path, typer.Argument(help="A directory to put it in, or the new path.")],
) -> None:
    """Downloads a version's artifact (checked against its sha256) and prints where."""
    name, ref = parse_reference(reference)
    with connect(ctx) as client:
        path = client.download_model_artifact(name, ref, dest)
    typer.echo(str(path))
