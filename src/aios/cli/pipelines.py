"""``aios run pipeline.yaml``: submits a pipeline and follows it until it ends.

The file is read and checked here (a step that needs itself, a cycle, an unknown field
is a one-line error before anything is sent); the control plane checks the rest. While
it runs, a live table of the steps is drawn on stderr; the final table goes to stdout.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

from aios.cli.remote import FAILURE, connect
from aios.cli.render import pipeline_table, stderr_console, stdout_console

__all__ = ["run"]

POLL = 0.25
"""Seconds between two looks at a pipeline being followed."""
INTERRUPTED = 130


def run(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The pipeline: YAML with name and steps.")],
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Print the pipeline's id and return.")
    ] = False,
) -> None:
    """Runs a pipeline; exits 0 once every step succeeded, 1 if one did not.

    A step is a job (command, cpus, memory, gpus, …) with ``needs:``, the steps it
    waits for::

        name: train
        steps:
          prepare: {command: [python, prep.py]}
          train: {command: "python train.py", gpus: 1, needs: [prepare]}
    """
    from aios.client.client import PIPELINE_TERMINAL
    from aios.control.pipelines import load_pipeline

    spec = load_pipeline(file)
    with connect(ctx) as client:
        view = client.submit_pipeline(spec)
        if detach:
            typer.echo(view.id)
            return
        err = stderr_console()
        err.print(f"pipeline {view.id}: {len(view.steps)} steps (Ctrl-C detaches)")
        try:
            with Live(pipeline_table(view, time.time()), console=err, transient=True) as live:
                while view.state not in PIPELINE_TERMINAL:
                    time.sleep(POLL)
                    view = client.pipeline(view.id)
                    live.update(pipeline_table(view, time.time()))
        except KeyboardInterrupt:
            typer.echo(f"detached; pipeline {view.id} keeps running", err=True)
            raise typer.Exit(INTERRUPTED) from None
    stdout_console().print(pipeline_table(view, time.time()))
    if view.state != "succeeded":
        raise typer.Exit(FAILURE)
