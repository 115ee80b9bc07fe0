"""``aios lineage NAME@V``: where a dataset version, a job or a model version came from
and what came from it, as two indented trees."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from aios.cli.remote import connect

if TYPE_CHECKING:
    from aios.lineage.api import TreeView

__all__ = ["lineage"]


def lineage(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="NAME@VERSION of a dataset (or with --model / --job).")
    ],
    model: Annotated[bool, typer.Option("--model", help="REF is a model version.")] = False,
    job: Annotated[bool, typer.Option("--job", help="REF is a job id.")] = False,
) -> None:
    """Prints the lineage graph upstream and downstream of REF.

    Example: ``aios lineage digits@3``, ``aios lineage --model digits-clf@production``.
    """
    kind: Literal["dataset", "job", "model"] = "model" if model else "job" if job else "dataset"
    if model and job:
        from aios.errors import InvalidInput

        raise InvalidInput("give one of --model and --job")
    with connect(ctx) as client:
        view = client.lineage(kind, ref)
    typer.echo(_name(view.upstream))
    typer.echo("upstream (what it came from):")
    _print_links(view.upstream, "<-", 1)
    typer.echo("downstream (what came from it):")
    _print_links(view.downstream, "->", 1)


def _name(tree: TreeView) -> str:
    node = tree.node
    text = f"job {node.ref}" if node.kind == "job" else f"{node.kind} {node.ref}"
    return f"{text}  {node.label}".rstrip()


def _print_links(tree: TreeView, arrow: str, depth: int) -> None:
    if depth == 1 and not tree.links:
        typer.echo("  (none)")
    for link in tree.links:
        more = "  (shown above)" if link.seen else ""
        typer.echo(f"{'   ' * (depth - 1)}  {arrow} {_name(link)}{more}")
        _print_links(link, arrow, depth + 1)
