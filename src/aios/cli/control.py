"""``aios up``: runs the control plane in the foreground until Ctrl-C (or SIGTERM).

FastAPI, uvicorn and the database are imported only here, so the other commands start
fast. Ctrl-C and SIGTERM both stop the server cleanly with exit code 0; running jobs
keep running and are adopted by the next ``aios up`` on the same home.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from aios.cli.remote import FAILURE, USAGE_ERROR, fail

__all__ = ["up"]

DEFAULT_PORT = 8470
"""As :data:`aios.control.DEFAULT_PORT`, repeated so that ``aios --help`` stays fast."""
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
"""Where the SDK looks when ``AIOS_URL`` is not set."""


def up(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
    home: Annotated[
        Path | None,
        typer.Option(help="Database, logs and admin token (default: $AIOS_HOME or ~/.aios)."),
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the database (default: SQLite in home).")
    ] = None,
    policy: Annotated[str, typer.Option(help="Scheduling policy.")] = "drf",
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Everyone is admin; loopback addresses only.")
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Run jobs on a Ray cluster: its address, or 'auto' for the local 'ray start'."
        ),
    ] = None,
    data_repo: Annotated[
        str | None,
        typer.Option(help="Data repository for job inputs and outputs (default: home/data)."),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A name clients reach the API by (repeatable); requests naming another "
            "Host are refused. Always allowed: localhost, loopback and the --host address "
            "(on 0.0.0.0 or ::, also any address and this machine's name)."
        ),
    ] = None,
    public_metrics: Annotated[
        bool, typer.Option("--public-metrics", help="Serve /metrics without a token.")
    ] = False,
) -> None:
    """Runs the control plane (API, scheduler, executor) here until Ctrl-C."""
    from aios.control import ControlPlane, Settings, default_home
    from aios.control.server import is_loopback

    home = home or default_home()
    settings = Settings(
        home=home,
        db=db,
        host=host,
        port=port,
        policy=policy,
        auth=not no_auth,
        ray=ray,
        data_repo=data_repo,
        allowed_hosts=list(allowed_host or ()),
        public_metrics=public_metrics,
    )
    if not no_auth or is_loopback(host):
        # Before the database and the executor start; ControlPlane refuses --no-auth
        # on other addresses itself.
        _check_port(host, port)
    plane = ControlPlane(settings)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    exports = []
    if url != DEFAULT_URL:
        exports.append(f"AIOS_URL={url}")
    if home != default_home():
        exports.append(f"AIOS_HOME={home}")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        plane.start()
        typer.echo(f"aios: control plane at {url} (home {home}, policy {policy})")
        if plane.admin_token_path is not None:
            typer.echo(f"aios: admin token written to {plane.admin_token_path}")
        elif not no_auth and plane.tokens.admin_token_path.exists():
            typer.echo(f"aios: admin token in {plane.tokens.admin_token_path}")
        if no_auth:
            typer.echo("aios: auth is off: every caller is an admin")
        if exports:
            typer.echo(f"aios: for the CLI elsewhere: export {' '.join(exports)}")
        typer.echo("aios: Ctrl-C stops it; running jobs are adopted by the next start")
        plane.serve()
    except KeyboardInterrupt:
        pass
    finally:
        plane.stop()
        signal.signal(signal.SIGTERM, previous)
    typer.echo("aios: control plane stopped")


def _check_port(host: str, port: int) -> None:
    """Ends the program with one line when ``host:port`` cannot be listened on: exit
    code 2 for a host that is no address, 1 for a port in use (or not ours to take)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"--host: cannot resolve {host!r}: {exc.strerror}", USAGE_ERROR)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn binds: a port in TIME_WAIT from a previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror}", FAILURE)


def _interrupt(_signal: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
