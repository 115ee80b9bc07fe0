"""``aios data share|unshare|own|shares``: which tenant a dataset belongs to and whom it
is shared with.

Unlike the rest of ``aios data``, which works on the repository itself, these ask the
control plane (``--url``, ``--token``): tenancy is its rule, for jobs' inputs and
outputs, lineage and the dashboard (see :mod:`aios.lineage.access`). A refusal is one
line on stderr and exit code 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aios.cli.remote import connect

if TYPE_CHECKING:
    from aios.lineage.sharing import SharingView

__all__ = ["own", "share", "shares", "unshare"]


def _dataset_name(name: str) -> str:
    """``name`` when it is a dataset's name (the URL would not carry a ``/``)."""
    from aios.data.datasets import check_name

    return check_name(name, "dataset")


DatasetArgument = Annotated[str, typer.Argument(help="The dataset's name.")]
WithOption = Annotated[str, typer.Option("--with", help="The queue whose members get it.")]


def share(
    ctx: typer.Context,
    name: DatasetArgument,
    queue: WithOption,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Read it as an input; never publish to it.")
    ] = False,
) -> None:
    """Shares dataset NAME with the members of queue QUEUE: their jobs read it as an
    input and, unless --read-only, publish versions of it as an output.

    Example: ``aios data share digits --with speech --read-only``.
    """
    with connect(ctx) as client:
        view = client.share_dataset(_dataset_name(name), queue, read_only=read_only)
    _print(view)


def unshare(ctx: typer.Context, name: DatasetArgument, queue: WithOption) -> None:
    """Takes dataset NAME's share away from queue QUEUE (jobs already submitted keep it)."""
    with connect(ctx) as client:
        client.unshare_dataset(_dataset_name(name), queue)
        view = client.dataset_shares(name)
    _print(view)


def own(
    ctx: typer.Context,
    name: DatasetArgument,
    queue: Annotated[str, typer.Option("--queue", help="The queue it now belongs to.")],
) -> None:
    """Makes dataset NAME belong to queue QUEUE (admins only): how a dataset added with
    ``aios data add``, which is no tenant's, becomes one's."""
    with connect(ctx) as client:
        view = client.assign_dataset(_dataset_name(name), queue)
    _print(view)


def shares(ctx: typer.Context, name: DatasetArgument) -> None:
    """Prints the queue dataset NAME belongs to and the queues it is shared with."""
    with connect(ctx) as client:
        view = client.dataset_shares(_dataset_name(name))
    _print(view)


def _print(view: SharingView) -> None:
    typer.echo(f"dataset {view.name}: owner {view.owner or '(none: admins only)'}")
    for item in view.shares:
        typer.echo(f"  shared with {item.queue}{' (read-only)' if item.read_only else ''}")
