"""The ``aios`` console script: one Typer app, one function per command.

Every command is registered through :func:`reports_invalid_input`, so a user mistake
(:class:`~aios.errors.InvalidInput` and its subclasses) ends the program with one line,
``aios: error: <message>``, on stderr and exit code 2, the code Typer gives its own usage
errors. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec

import typer

from aios.cli.simulate import simulate
from aios.errors import InvalidInput

__all__ = ["DEMO_LIMIT", "DEMO_POLICIES", "USAGE_ERROR", "app", "demo", "reports_invalid_input"]

USAGE_ERROR = 2
"""The exit code of a user mistake, as for Typer's (and Click's) own usage errors."""
DEMO_LIMIT = 3000
DEMO_POLICIES = "fifo,fifo+backfill,sjf,las,drf"

P = ParamSpec("P")

app = typer.Typer(
    name="aios",
    help="AIOS: an operating system for AI work.",
    no_args_is_help=True,
    add_completion=False,
    # A bug's traceback must not print the locals: they hold whole traces.
    pretty_exceptions_show_locals=False,
)


def reports_invalid_input(command: Callable[P, None]) -> Callable[P, None]:
    """Returns ``command`` wrapped so that an InvalidInput it raises is printed as
    ``aios: error: <message>`` on one line of stderr and exits with code 2."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except InvalidInput as exc:
            message = " ".join(str(exc).splitlines())
            typer.echo(f"aios: error: {message}", err=True)
            raise typer.Exit(USAGE_ERROR) from None

    return run


def demo() -> None:
    """Replays 3,000 jobs of the bundled Philly trace under five policies and compares them.

    The first 3,000 jobs, on 55 nodes × 8 GPUs, under fifo, fifo+backfill, sjf, las and
    drf: ``aios simulate --limit 3000 --policy fifo,fifo+backfill,sjf,las,drf``.
    """
    # Until the control plane exists the demo is the simulator; it runs in well under a
    # minute on two cores.
    simulate(limit=DEMO_LIMIT, nodes=55, gpus_per_node=8, policy=DEMO_POLICIES)


for _name, _command in (("simulate", simulate), ("demo", demo)):
    app.command(_name)(reports_invalid_input(_command))
