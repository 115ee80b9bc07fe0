"""``aios deploy``, ``aios deployments``, ``aios undeploy`` and ``aios traffic``.

A deployment serves model versions from the registry over the Open Inference Protocol
at ``$AIOS_URL/v2/models/<deployment>/infer``; its replicas are service jobs that the
scheduler places like any other (``aios ps`` lists them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from aios.cli.remote import connect
from aios.cli.render import stdout_console
from aios.errors import InvalidInput

if TYPE_CHECKING:
    from aios.deployments.specs import DeploymentView

__all__ = ["deploy", "deployments", "traffic", "undeploy"]


def deploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="NAME@VERSION, NAME@alias or NAME (latest).")],
    name: Annotated[
        str | None, typer.Option(help="Deployment name (default: the model's).")
    ] = None,
    replicas: Annotated[int | None, typer.Option(min=1, help="A fixed replica count.")] = None,
    min_: Annotated[
        int | None, typer.Option("--min", min=1, help="Fewest replicas (autoscaled).")
    ] = None,
    max_: Annotated[
        int | None, typer.Option("--max", min=1, help="Most replicas (autoscaled).")
    ] = None,
    target: Annotated[
        float, typer.Option(help="Requests in flight per replica the autoscaler aims at.")
    ] = 4.0,
    canary: Annotated[
        str | None, typer.Option(help="NAME@VERSION:PERCENT served beside the model.")
    ] = None,
    cpus: Annotated[str, typer.Option(help="Cores per replica: 1, 0.5, 500m.")] = "1",
    memory: Annotated[str, typer.Option(help="Memory per replica: 512M, 2G.")] = "1G",
    gpus: Annotated[int, typer.Option(min=0, help="GPUs per replica.")] = 0,
    queue: Annotated[str | None, typer.Option(help="Queue (default: your tenant's).")] = None,
    priority: Annotated[int, typer.Option(help="Priority of the replica jobs.")] = 0,
    max_batch_size: Annotated[int, typer.Option(min=1, help="Dynamic batching limit.")] = 32,
    max_queue_delay_ms: Annotated[
        float, typer.Option(min=0, help="How long a request waits for others to batch with.")
    ] = 2.0,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the replicas are ready.")
    ] = True,
    update: Annotated[
        bool,
        typer.Option("--update", help="Replace an existing deployment's spec (rolling update)."),
    ] = False,
) -> None:
    """Serves MODEL with replicas the scheduler places; prints where to send requests.

    Example: ``aios deploy iris@3 --replicas 2 --canary iris@4:10``
    """
    if replicas is not None and (min_ is not None or max_ is not None):
        raise InvalidInput("--replicas: give either --replicas or --min/--max, not both")
    options: dict[str, object] = {
        "name": name,
        "replicas": replicas,
        "min_replicas": min_,
        "max_replicas": max_,
        "target_in_flight": target,
        "canary": canary,
        "cpus": cpus,
        "memory": memory,
        "gpus": gpus,
        "queue": queue,
        "priority": priority,
        "max_batch_size": max_batch_size,
        "max_queue_delay_ms": max_queue_delay_ms,
    }
    with connect(ctx) as client:
        given = {k: v for k, v in options.items() if v is not None}
        try:
            if update:
                given.pop("name", None)
                deployment = name or model.partition("@")[0]
                view = client.update_deployment(deployment, model, **given)
            else:
                view = client.deploy(model, **given)
        except ValueError as exc:  # the spec's own checks, before anything is sent
            raise InvalidInput(" ".join(str(exc).split("\n")[1:3]).strip()) from None
        if wait:
            view = client.wait_deployment(view.name, ready=view.min_replicas, timeout=300)
        typer.echo(f"{view.name}: {_traffic(view)}; {view.message}")
        typer.echo(f"infer: POST {client.url}/v2/models/{view.name}/infer")


def deployments(ctx: typer.Context) -> None:
    """Lists the deployments you may see: versions and traffic, replicas, state."""
    with connect(ctx) as client:
        views = client.deployments()
    table = Table()
    for column in ("name", "traffic", "replicas", "queue", "state"):
        table.add_column(column)
    for view in views:
        ready = sum(r.ready for r in view.replicas)
        bounds = (
            str(view.min_replicas)
            if view.min_replicas == view.max_replicas
            else f"{view.min_replicas}-{view.max_replicas}"
        )
        table.add_row(
            view.name,
            _traffic(view),
            f"{ready}/{view.desired_replicas} ({bounds})",
            view.queue,
            view.message,
        )
    stdout_console().print(table)


def traffic(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The deployment.")],
    weights: Annotated[
        list[str], typer.Argument(help="VERSION=PERCENT for each version, adding up to 100.")
    ],
) -> None:
    """Shifts traffic between the versions a deployment serves (a canary, a rollback).

    Example: ``aios traffic iris 3=50 4=50``; ``aios traffic iris 3=100`` rolls back.
    """
    parsed: dict[str, int] = {}
    for pair in weights:
        version, sep, percent = pair.partition("=")
        if not sep or not version.isdigit() or not percent.isdigit():
            raise InvalidInput(f"weights: expected VERSION=PERCENT, got {pair!r}")
        parsed[version] = int(percent)
    with connect(ctx) as client:
        view = client.set_traffic(name, parsed)
    typer.echo(f"{view.name}: {_traffic(view)}")


def undeploy(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The deployment.")]
) -> None:
    """Removes a deployment; its replicas drain and stop."""
    with connect(ctx) as client:
        client.undeploy(name)
    typer.echo(f"{name}: removed")


def _traffic(view: DeploymentView) -> str:
    return ", ".join(f"{v.model}@{v.version} {v.weight}%" for v in view.versions)
