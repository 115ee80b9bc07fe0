"""The ``aios`` console script: one Typer app, one function per command.

Every command is registered through :func:`reports_invalid_input`, so a user mistake
(:class:`~aios.errors.InvalidInput`, or a request the control plane refused with an HTTP
4xx) ends the program with one line, ``aios: error: <message>``, on stderr and exit code
2, the code of a usage error; so do Click's own usage errors (an unknown option, a value
that is not a number). A control plane that cannot be reached, or that failed (HTTP 5xx),
is one line and exit code 1. Any other exception is a bug and keeps its traceback.
``aios data add`` and ``aios backup create`` exit 3 when a dataset version was kept but
not read whole (a file changed while it was read, or vanished), naming each file.

``aios --url URL --token-file PATH COMMAND`` names the control plane and the file
holding the bearer token; without them the commands use ``AIOS_URL`` and
``AIOS_TOKEN`` (or ``$AIOS_HOME/admin.token``). A token is never an argument: every
user of the machine reads a process's arguments (``ps``, ``/proc/PID/cmdline``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ParamSpec

import typer
from typer.core import TyperGroup

from aios.cli import (
    admin,
    control,
    deploy,
    jobs,
    lineage,
    models,
    packaging,
    pipelines,
    sharing,
)
from aios.cli.backup import backup_app
from aios.cli.data import data_app
from aios.cli.remote import FAILURE, USAGE_ERROR, Remote, exit_code, fail, read_token
from aios.cli.simulate import simulate
from aios.errors import AiosError
from aios.serving.command import serve

__all__ = ["USAGE_ERROR", "app", "demo", "reports_invalid_input"]


P = ParamSpec("P")


class _OneLineErrors(TyperGroup):
    """Typer's group, with Click's usage errors on one line as ``aios: error: …``."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except typer.TyperException as exc:  # Click's errors, as Typer vendors Click
            # Typer has printed the help already; it checks the name the same way.
            if type(exc).__name__ != "NoArgsIsHelpError":
                context = getattr(exc, "ctx", None)
                hint = f" (see '{context.command_path} --help')" if context is not None else ""
                message = " ".join(exc.format_message().splitlines())
                typer.echo(f"aios: error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(FAILURE)
        # Outside standalone mode Click returns typer.Exit's code, or the command's None.
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="aios",
    cls=_OneLineErrors,
    help="AIOS: an operating system for AI work.",
    no_args_is_help=True,
    add_completion=False,
    # A bug's traceback must not print the locals: they hold whole traces.
    pretty_exceptions_show_locals=False,
)
queue_app = typer.Typer(
    name="queue", help="Queues: quotas, weights, cohorts.", no_args_is_help=True
)
token_app = typer.Typer(name="token", help="Users and their tokens.", no_args_is_help=True)
model_app = typer.Typer(
    name="model", help="Models: versions, aliases, lineage.", no_args_is_help=True
)


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="The control plane (default: $AIOS_URL or http://127.0.0.1:8470)."),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the bearer token (default: $AIOS_TOKEN or $AIOS_HOME/admin.token).",
            dir_okay=False,
        ),
    ] = None,
    token: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """AIOS: an operating system for AI work."""
    if token is not None:
        fail(
            "--token: a token on the command line is visible to every user of this "
            "machine (ps); give --token-file PATH, or set AIOS_TOKEN",
            USAGE_ERROR,
        )
    ctx.obj = Remote(url, read_token(token_file) if token_file is not None else None)


def reports_invalid_input(command: Callable[P, None]) -> Callable[P, None]:
    """Returns ``command`` wrapped so that a user mistake it raises is printed as
    ``aios: error: <message>`` on one line of stderr and exits with code 2.

    A user mistake is an InvalidInput or a request the control plane refused (HTTP 4xx);
    a control plane that cannot be reached or failed (5xx) exits with code 1 instead.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except AiosError as exc:
            code = exit_code(exc)
            if code is None:
                raise
            fail(str(exc), code)

    return run


def demo() -> None:
    """Runs the main job: a real pipeline through a control plane on a temporary home.

    Starts the control plane (SQLite, local executor, API on a free loopback port),
    creates two fair-share queues, runs prepare → train four scikit-learn models in
    parallel → evaluate → pick the best → replay a slice of the bundled trace under
    three policies, prints the schedule and the results, and stops the control plane.
    """
    from aios.demo import run_demo

    code = run_demo()
    if code:
        raise typer.Exit(code)


_COMMANDS: tuple[tuple[typer.Typer, str, Callable[..., None]], ...] = (
    (app, "up", control.up),
    (app, "submit", jobs.submit),
    (app, "ps", jobs.ps),
    (app, "show", jobs.show),
    (app, "logs", jobs.logs),
    (app, "cancel", jobs.cancel),
    (app, "resubmit", jobs.resubmit),
    (app, "wait", jobs.wait),
    (app, "run", pipelines.run),
    (app, "lineage", lineage.lineage),
    (app, "nodes", admin.nodes),
    (app, "whoami", admin.whoami),
    (queue_app, "create", admin.create_queue),
    (queue_app, "ls", admin.list_queues),
    (queue_app, "set", admin.set_queue),
    (queue_app, "policy", admin.show_policy),
    (queue_app, "set-policy", admin.set_policy),
    (token_app, "create", admin.create_token),
    (token_app, "ls", admin.list_tokens),
    (token_app, "revoke", admin.revoke_token),
    (data_app, "share", sharing.share),
    (data_app, "unshare", sharing.unshare),
    (data_app, "own", sharing.own),
    (data_app, "shares", sharing.shares),
    (model_app, "register", models.register),
    (model_app, "ls", models.list_models),
    (model_app, "show", models.show),
    (model_app, "versions", models.versions),
    (model_app, "alias", models.alias),
    (model_app, "unalias", models.unalias),
    (model_app, "tag", models.tag),
    (model_app, "delete", models.delete),
    (model_app, "download", models.download),
    (model_app, "package", packaging.package),
    (model_app, "export", packaging.export),
    (app, "deploy", deploy.deploy),
    (app, "deployments", deploy.deployments),
    (app, "traffic", deploy.traffic),
    (app, "undeploy", deploy.undeploy),
    (app, "serve", serve),
    (app, "simulate", simulate),
    (app, "demo", demo),
)
for _group, _name, _command in _COMMANDS:
    # After the first word of CMD, every word is the job's: `aios submit ls -la`.
    _settings = {"allow_interspersed_args": False} if _command is jobs.submit else None
    _group.command(_name, context_settings=_settings)(reports_invalid_input(_command))
app.add_typer(queue_app)
app.add_typer(token_app)
app.add_typer(model_app)
app.add_typer(data_app)
app.add_typer(backup_app)
