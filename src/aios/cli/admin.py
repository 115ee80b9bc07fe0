"""``aios queue …``, ``aios nodes``, ``aios token create|ls|revoke`` and ``aios whoami``.

Tokens may be given an expiry (``--expires 30d``); ``aios token revoke --job ID`` ends a
running job's own token before the job does.

Quotas are written as the scheduler counts them per resource, ``cpu=8,memory=32G,gpu=2``;
the control plane checks each amount and names the one it refuses.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from aios.cli.remote import connect
from aios.cli.render import amount, stdout_console, usage_of
from aios.errors import InvalidInput
from aios.resources.quantity import format_bytes

__all__ = [
    "NONE",
    "create_queue",
    "create_token",
    "list_queues",
    "list_tokens",
    "nodes",
    "parse_amounts",
    "revoke_token",
    "set_policy",
    "set_queue",
    "show_policy",
    "whoami",
]

NONE = "none"
"""The word that removes a queue's quota (unlimited) or cohort in ``aios queue set``."""
RESOURCES = ("cpu", "memory", "gpu")

QuotaOption = Annotated[
    str | None,
    typer.Option(help="RESOURCE=AMOUNT,…: cpu=8,memory=32G,gpu=2 (absent: unlimited)."),
]
WeightOption = Annotated[float | None, typer.Option(help="Share against other queues.")]
CohortOption = Annotated[str | None, typer.Option(help="Cohort whose unused quota it may borrow.")]
BorrowingOption = Annotated[
    str | None, typer.Option(help="RESOURCE=AMOUNT,…: most it may borrow in its cohort.")
]


def parse_amounts(option: str, text: str) -> dict[str, float | str]:
    """``"cpu=8,memory=32G,gpu=2"`` as ``{"cpu": 8, "memory": "32G", "gpu": 2}``.

    Numbers become numbers, anything else stays text for the control plane to parse;
    raises InvalidInput naming ``option`` for a part that is not ``RESOURCE=AMOUNT``.
    """
    amounts: dict[str, float | str] = {}
    for part in text.split(","):
        resource, sep, value = (piece.strip() for piece in part.partition("="))
        if not sep or not resource or not value:
            raise InvalidInput(f"{option}: expected RESOURCE=AMOUNT[,…], got {part.strip()!r}")
        amounts[resource] = _number(value)
    return amounts


def _number(text: str) -> float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def create_queue(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the queue (and of its tenant).")],
    quota: QuotaOption = None,
    weight: WeightOption = None,
    cohort: CohortOption = None,
    borrowing_limit: BorrowingOption = None,
) -> None:
    """Creates a queue (admins only)."""
    with connect(ctx) as client:
        client.create_queue(
            name,
            quota=None if quota is None else parse_amounts("--quota", quota),
            weight=1.0 if weight is None else weight,
            cohort=cohort,
            borrowing_limit=(
                None
                if borrowing_limit is None
                else parse_amounts("--borrowing-limit", borrowing_limit)
            ),
        )
    typer.echo(f"queue {name} created")


def set_queue(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The queue.")],
    quota: Annotated[
        str | None,
        typer.Option(help=f"The whole new quota, RESOURCE=AMOUNT,…, or {NONE!r} for unlimited."),
    ] = None,
    weight: WeightOption = None,
    cohort: Annotated[str | None, typer.Option(help=f"A cohort, or {NONE!r} to leave it.")] = None,
    borrowing_limit: BorrowingOption = None,
) -> None:
    """Changes what is given of a queue's quota, weight, cohort and borrowing limit."""
    changes: dict[str, Any] = {}
    if quota is not None:
        changes["quota"] = None if quota.lower() == NONE else parse_amounts("--quota", quota)
    if weight is not None:
        changes["weight"] = weight
    if cohort is not None:
        changes["cohort"] = None if cohort.lower() == NONE else cohort
    if borrowing_limit is not None:
        changes["borrowing_limit"] = parse_amounts("--borrowing-limit", borrowing_limit)
    if not changes:
        raise InvalidInput("queue set: give at least one of --quota, --weight, --cohort, …")
    with connect(ctx) as client:
        client.update_queue(name, **changes)
    typer.echo(f"queue {name} updated")


def list_queues(ctx: typer.Context) -> None:
    """Lists the queues you may see: quota against usage, pending and running jobs."""
    with connect(ctx) as client:
        queues = client.queues()
    table = Table()
    for column in ("queue", "weight", "cohort", *RESOURCES, "borrowing limit"):
        table.add_column(column, no_wrap=True)
    table.add_column("pending", justify="right")
    table.add_column("running", justify="right")
    for queue in queues:
        borrowing = ",".join(f"{r}={amount(r, v)}" for r, v in queue.borrowing_limit.items())
        table.add_row(
            escape(queue.name),
            f"{queue.weight:g}",
            escape(queue.cohort or ""),
            *(usage_of(resource, queue.usage, queue.quota) for resource in RESOURCES),
            borrowing,
            str(queue.pending),
            str(queue.running),
        )
    stdout_console().print(table)


def nodes(ctx: typer.Context) -> None:
    """Lists the nodes: cores and memory allocated of allocatable, and who holds each GPU."""
    with connect(ctx) as client:
        views = client.nodes()
    table = Table()
    for column in ("node", "cpus alloc/total", "cpus free", "memory alloc/total", "memory free"):
        table.add_column(column, no_wrap=True)
    table.add_column("gpus")
    for node in views:
        gpus = "\n".join(
            f"{gpu.index} {escape(gpu.model)} {format_bytes(gpu.memory)}: "
            + ("free" if gpu.job_id is None else f"job {gpu.job_id}")
            for gpu in node.gpus
        )
        table.add_row(
            escape(node.name),
            f"{amount('cpu', node.allocated['cpu'])} / {amount('cpu', node.allocatable['cpu'])}",
            amount("cpu", node.free["cpu"]),
            f"{amount('memory', node.allocated['memory'])} / "
            f"{amount('memory', node.allocatable['memory'])}",
            amount("memory", node.free["memory"]),
            gpus or "none",
        )
    stdout_console().print(table)


def create_token(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user the token is for.")],
    tenant: Annotated[str | None, typer.Option(help="The queue the user belongs to.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin, of every queue.")] = False,
    expires: Annotated[
        str | None, typer.Option(help="How long it works: 30d, 12h, 3600 (default: ever).")
    ] = None,
) -> None:
    """Creates a user and prints its token (shown only this once)."""
    if (tenant is None) == (not admin):
        raise InvalidInput("token create: give exactly one of --tenant QUEUE or --admin")
    with connect(ctx) as client:
        token = client.create_token(name, tenant=tenant, admin=admin, expires=expires)
    typer.echo(token)


def list_tokens(ctx: typer.Context) -> None:
    """Lists tokens (never their text): yours and your queue's running jobs' own; an
    admin's, every one."""
    with connect(ctx) as client:
        listed = client.tokens()
    table = Table(box=None)
    for column in ("id", "user", "rights", "created", "expires", "state"):
        table.add_column(column)
    now = time.time()
    for token in listed:
        rights = "admin" if token.admin else f"queue {token.tenant}"
        if token.revoked_at is not None:
            state = "revoked"
        elif token.expires_at is not None and token.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        table.add_row(
            str(token.id) if token.id is not None else f"job {token.job}",
            escape(token.user),
            escape(rights),
            _when(token.created_at),
            _when(token.expires_at) if token.expires_at is not None else "never",
            state,
        )
    stdout_console().print(table)


def revoke_token(
    ctx: typer.Context,
    token_id: Annotated[int | None, typer.Argument(help="The token's id (aios token ls).")] = None,
    job: Annotated[
        int | None, typer.Option(help="Revoke this running job's own token instead.")
    ] = None,
) -> None:
    """Revokes a token now: a user's (by id) or a running job's own (--job)."""
    if (token_id is None) == (job is None):
        raise InvalidInput("token revoke: give a token id or --job JOB, not both")
    with connect(ctx) as client:
        if job is not None:
            client.revoke_job_token(job)
            typer.echo(f"job {job}'s token revoked")
        else:
            assert token_id is not None
            client.revoke_token(token_id)
            typer.echo(f"token {token_id} revoked")


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))


def whoami(ctx: typer.Context) -> None:
    """Prints who the token belongs to, and which control plane answered."""
    with connect(ctx) as client:
        me = client.whoami()
        url = client.url
    role = "admin" if me.admin else f"tenant {me.tenant}"
    typer.echo(f"{me.name} ({role}) at {url}")


def set_policy(
    ctx: typer.Context,
    policy: Annotated[
        str, typer.Argument(help="A policy spec: fifo, las, drf, priority, fifo+backfill, …")
    ],
) -> None:
    """Switches the live scheduling policy, without a restart (admins only)."""
    with connect(ctx) as client:
        view = client.set_policy(policy)
    typer.echo(f"scheduling policy {view.policy}")


def show_policy(ctx: typer.Context) -> None:
    """Prints the scheduling policy in force, the configured one, and the choices."""
    with connect(ctx) as client:
        view = client.policy()
    switched = "" if view.policy == view.configured else f" (configured: {view.configured})"
    typer.echo(f"scheduling policy {view.policy}{switched}; choices: {', '.join(view.choices)}")
