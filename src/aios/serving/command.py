"""``aios serve``: an inference server for one or more model files, in the foreground.

This is the command a serving replica runs (``python -m aios.serving`` takes the same
arguments). It loads every ``--model`` first, refusing a file that does not load with
the loader's reason (exit code 2), then serves the Open Inference Protocol until
SIGTERM or Ctrl-C, both of which drain: requests already taken are answered.

With ``AIOS_REPLICA_SECRET`` in its environment (a deployment's replica: the controller
puts it there) it answers only requests carrying that secret in
``X-AIOS-Replica-Secret``, health checks aside; without it (started by hand for local
use) it answers everyone. It says which when it starts. See :mod:`aios.serving.secret`.

It lives with the replica, not the CLI: a replica imports nothing of the CLI or the
control plane, and ``aios serve`` is this same function registered on the CLI's app.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, cast, get_args

import typer

from aios.errors import InvalidInput

if TYPE_CHECKING:
    from aios.serving.runtimes import ModelFormat

__all__ = ["main", "parse_model", "serve"]

DEFAULT_PORT = 8000
USAGE_ERROR = 2
FAILURE = 1


def fail(message: str, code: int) -> NoReturn:
    """``aios: error: <message>`` on one line of stderr, and exit with ``code``."""
    typer.echo(f"aios: error: {' '.join(message.splitlines())}", err=True)
    raise typer.Exit(code)


def parse_model(spec: str) -> tuple[str, str, ModelFormat, Path]:
    """``"digits:2=onnx:/m/model.onnx"`` → ``("digits", "2", "onnx", Path(...))``; the
    version is "1" when omitted.

    Raises InvalidInput naming ``--model`` and what is missing or unknown."""
    from aios.serving.runtimes import ModelFormat

    ref, sep, target = spec.partition("=")
    fmt, colon, path = target.partition(":")
    if not sep or not ref or not colon or not path:
        raise InvalidInput(f"--model: expected NAME[:VERSION]=FORMAT:PATH, got {spec!r}")
    name, _, version = ref.partition(":")
    formats = get_args(ModelFormat)
    if fmt not in formats:
        raise InvalidInput(f"--model {spec!r}: unknown format {fmt!r} (use {', '.join(formats)})")
    return name, version or "1", cast("ModelFormat", fmt), Path(path)


def serve(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            metavar="NAME[:VERSION]=FORMAT:PATH",
            help="A model to serve (format: onnx, sklearn, torchscript, python); repeatable.",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")
    ] = DEFAULT_PORT,
    max_batch_size: Annotated[
        int, typer.Option(min=0, help="Rows per batch at most; 0 or 1 turns batching off.")
    ] = 64,
    max_queue_delay_ms: Annotated[
        float, typer.Option(min=0.0, help="How long a request may wait for others to batch with.")
    ] = 2.0,
    preferred_batch_size: Annotated[
        list[int] | None,
        typer.Option(help="A batch size that starts at once when reached; repeatable."),
    ] = None,
    max_queue_size: Annotated[
        int, typer.Option(min=1, help="Requests waiting per model version before 503s.")
    ] = 256,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a request may take before a 503.")
    ] = 30.0,
    instances: Annotated[
        int, typer.Option(min=1, help="Batches of one model version that may run at once.")
    ] = 1,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Threads of each runtime (default: its own).")
    ] = None,
    gpu: Annotated[
        bool, typer.Option("--gpu", help="Run on the GPU where the format can.")
    ] = False,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body accepted (413 above).")
    ] = 64 * 1024 * 1024,
    ready_file: Annotated[
        Path | None,
        typer.Option(help='Where to write {"host", "port"} as JSON once listening.'),
    ] = None,
) -> None:
    """Serves model files over the Open Inference Protocol (KServe V2) until Ctrl-C.

    Requests need the X-AIOS-Replica-Secret header when AIOS_REPLICA_SECRET is set."""
    from aios.serving import BatchingConfig, ServedModel, serve_models
    from aios.serving.secret import SECRET_ENV, SECRET_HEADER, take_secret

    secret = take_secret()  # before any model code runs, so none of it finds the secret

    batching = BatchingConfig(
        max_batch_size=max_batch_size,
        max_queue_delay=max_queue_delay_ms / 1000,
        preferred_batch_sizes=tuple(preferred_batch_size or ()),
        max_queue_size=max_queue_size,
        timeout=timeout,
        instances=instances,
    )
    served = []
    seen: set[tuple[str, str]] = set()
    for spec in model:
        name, version, fmt, path = parse_model(spec)
        if (name, version) in seen:
            raise InvalidInput(f"--model: {name}:{version} is given twice")
        seen.add((name, version))
        served.append(ServedModel(name, version, fmt, path, batching, gpu=gpu, threads=threads))
    refs = ", ".join(f"{m.name}:{m.version}" for m in served)

    def announce(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        typer.echo(f"aios: serving {refs} at http://{shown}:{bound_port}")
        if secret is None:
            typer.echo(f"aios: requests need no secret ({SECRET_ENV} is not set)")
        else:
            typer.echo(f"aios: requests need the secret of {SECRET_ENV} in {SECRET_HEADER}")

    try:
        serve_models(
            served,
            host,
            port,
            ready_file,
            max_body_bytes=max_body_bytes,
            graceful_seconds=timeout,
            on_ready=announce,
            secret=secret,
        )
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", FAILURE)
    typer.echo("aios: inference server stopped")


def _reports_invalid_input(command: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> None:
        try:
            command(*args, **kwargs)
        except InvalidInput as exc:
            fail(str(exc), USAGE_ERROR)

    return run


def main() -> None:
    """``python -m aios.serving ARGS``: ``aios serve ARGS`` without the rest of the CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    app.command()(_reports_invalid_input(serve))
    app(prog_name="python -m aios.serving")
