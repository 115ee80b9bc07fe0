"""``aios submit|ps|show|logs|cancel|wait``: jobs on a running control plane.

Each command parses its options, makes one or a few calls of :class:`~aios.client.Client`
and prints the answer; the control plane checks everything it is sent. Results go to
stdout (``aios submit`` prints only the job id, for ``ID=$(aios submit -- …)``), the
spinner of ``wait`` to stderr.
"""

from __future__ import annotations

import shlex
import sys
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aios.cli.remote import FAILURE, connect, fail
from aios.cli.render import (
    job_resources,
    job_times,
    placement,
    state,
    stderr_console,
    stdout_console,
    timestamp,
)
from aios.errors import InvalidInput

if TYPE_CHECKING:
    from aios.client import Client
    from aios.control.specs import JobView

__all__ = ["JobState", "cancel", "follow", "logs", "parse_env", "ps", "show", "submit", "wait"]

POLL = 0.2
"""Seconds between two looks at a job that is being waited for."""
ACTIVE = ("queued", "running")


class JobState(StrEnum):
    """The states of a job as the control plane reports them."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UPSTREAM_FAILED = "upstream_failed"
    UNSCHEDULABLE = "unschedulable"


class Stream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


class Network(StrEnum):
    """A job's network inside its sandbox."""

    host = "host"
    none = "none"


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``["K=V", …]`` as a mapping; raises InvalidInput naming a pair without ``=``."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--env: expected KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def submit(
    ctx: typer.Context,
    command: Annotated[
        list[str],
        typer.Argument(
            metavar="-- CMD...", help="The program and its arguments, after --.", show_default=False
        ),
    ],
    name: Annotated[str, typer.Option(help="Name of the job (default: the program).")] = "",
    cpus: Annotated[str, typer.Option(help="Cores per replica: 2, 0.5 or 500m.")] = "1",
    mem: Annotated[str, typer.Option(help="Memory per replica: 512M, 4G.")] = "1G",
    gpus: Annotated[int, typer.Option(help="GPUs per replica.")] = 0,
    gpu_kind: Annotated[str | None, typer.Option(help="GPU model to insist on (A100).")] = None,
    replicas: Annotated[int, typer.Option(help="Replicas started together (gang).")] = 1,
    priority: Annotated[int, typer.Option(help="Higher runs first within a queue.")] = 0,
    queue: Annotated[str | None, typer.Option(help="Queue (default: your tenant's).")] = None,
    after: Annotated[
        list[int] | None, typer.Option(help="A job that must succeed first (repeatable).")
    ] = None,
    retries: Annotated[int, typer.Option(help="Times to retry a failed attempt.")] = 0,
    retry_backoff: Annotated[float, typer.Option(help="Seconds before the first retry.")] = 1.0,
    time_limit: Annotated[str | None, typer.Option(help="Longest run: 90s, 30m, 1h.")] = None,
    grace: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL.")] = 30.0,
    env: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE in the job's environment (repeatable).")
    ] = None,
    no_preempt: Annotated[bool, typer.Option(help="Never preempt this job.")] = False,
    shell: Annotated[bool, typer.Option(help="Run the words as one /bin/sh -c string.")] = False,
    input_: Annotated[
        list[str] | None,
        typer.Option(
            "--input", help="Dataset version NAME@REF, read-only at $AIOS_INPUTS/NAME (repeatable)."
        ),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option(help="Dataset to publish from $AIOS_OUTPUTS/NAME on success (repeatable)."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option(help="Run even if the same command ran on the same inputs.")
    ] = False,
    image: Annotated[
        str | None,
        typer.Option(
            help="OCI image to run in: a layout directory or a docker/podman save archive, "
            "PATH[:TAG] (default: the host's root, read-only)."
        ),
    ] = None,
    network: Annotated[
        Network, typer.Option(help="host: the machine's network; none: a loopback of its own.")
    ] = Network.host,
    as_admin: Annotated[
        bool,
        typer.Option(help="Give the job's own token your admin rights, not its queue's."),
    ] = False,
    wait_: Annotated[
        bool, typer.Option("--wait", help="Wait until the job ends; exit 1 unless it succeeded.")
    ] = False,
) -> None:
    """Submits a command as a job and prints its id. The job runs in a sandbox: its own
    directory, the host's root read-only (or ``--image``), its own processes, and a
    token of its own in AIOS_TOKEN.

    Example: ``aios submit --cpus 2 --mem 4G --gpus 1 -- python train.py --epochs 3``
    """
    with connect(ctx) as client:
        job = client.submit(
            " ".join(command) if shell else command,
            name=name,
            cpus=cpus,
            memory=mem,
            gpus=gpus,
            gpu_kind=gpu_kind,
            replicas=replicas,
            priority=priority,
            queue=queue,
            after=after or [],
            env=parse_env(env or []),
            time_limit=time_limit,
            retries=retries,
            retry_backoff=retry_backoff,
            grace=grace,
            preemptible=not no_preempt,
            inputs=input_ or [],
            outputs=output or [],
            cache=not no_cache,
            image=image,
            network=network.value,
            as_admin=as_admin,
        )
        typer.echo(job.id)
        if wait_:
            _finish(follow(client, job.id, None))


def ps(
    ctx: typer.Context,
    state_: Annotated[
        JobState | None, typer.Option("--state", help="Only jobs in this state.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Only jobs of this queue.")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Jobs in every state.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many jobs.")] = 50,
) -> None:
    """Lists jobs, newest first: queued and running ones unless --all or --state."""
    with connect(ctx) as client:
        if state_ is not None or all_:
            jobs = client.jobs(state=state_, queue=queue, limit=limit)
        else:
            jobs = [job for s in ACTIVE for job in client.jobs(state=s, queue=queue, limit=limit)]
            jobs = sorted(jobs, key=lambda job: job.id, reverse=True)[:limit]
        # The listing carries no attempts; where a running job sits takes one look each.
        jobs = [client.get(job.id) if job.state == "running" else job for job in jobs]
    if not jobs:
        which = "" if state_ is not None or all_ else " queued or running"
        typer.echo(f"no{which} jobs", err=True)
        return
    now = time.time()
    table = Table()
    for column in ("id", "name", "queue", "state", "resources", "node", "cores", "gpus"):
        table.add_column(column, no_wrap=True, justify="right" if column == "id" else "left")
    table.add_column("wait", justify="right", no_wrap=True)
    table.add_column("runtime", justify="right", no_wrap=True)
    table.add_column("message")
    for job in jobs:
        table.add_row(
            str(job.id),
            escape(job.name),
            escape(job.queue),
            state(job.state),
            job_resources(job),
            *placement(job),
            *job_times(job, now),
            escape(job.message),
        )
    stdout_console().print(table)


def show(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="The job.")]) -> None:
    """Shows one job: its spec, state, attempts and events."""
    with connect(ctx) as client:
        job = client.get(job_id)
        events = client.events(job_id)
    waited, ran = job_times(job, time.time())
    command = job.command[0] if job.shell else shlex.join(job.command)
    facts = {
        "state": state(job.state)
        + ("" if job.exit_code is None else f" (exit {job.exit_code})")
        + (f", stopping: {job.stopping}" if job.stopping else ""),
        "command": escape(command) + (" (shell)" if job.shell else ""),
        "queue": escape(job.queue),
        "owner": escape(job.owner),
        "resources": job_resources(job),
        "priority": f"{job.priority}" + ("" if job.preemptible else ", not preemptible"),
        "after": ", ".join(str(parent) for parent in job.after),
        "pipeline": "" if job.pipeline_id is None else f"{job.pipeline_id} step {job.step}",
        "retries": f"{job.retries} of {job.max_retries}",
        "time limit": "" if job.time_limit is None else f"{job.time_limit:g}s",
        "submitted": timestamp(job.submitted_at),
        "started": timestamp(job.started_at),
        "finished": timestamp(job.finished_at),
        "waited": waited,
        "ran": ran,
        "reason": "" if job.reason == job.state else job.reason or "",
        "message": "" if job.message == job.state else escape(job.message),
    }
    out = stdout_console()
    out.print(f"[bold]job {job.id}[/bold] {escape(job.name)}")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in facts.items():
        if value:
            grid.add_row(key, value)
    out.print(grid)
    if job.attempts:
        attempts = Table(title="attempts", title_justify="left")
        columns = ("#", "node", "pid", "cores", "gpus", "started", "finished", "exit", "reason")
        for column in columns:
            attempts.add_column(column, no_wrap=True)
        attempts.add_column("message")
        for attempt in job.attempts:
            places = attempt.replicas
            attempts.add_row(
                str(attempt.number),
                " ".join(p.node for p in places) if places else attempt.node,
                " ".join("-" if p.pid is None else str(p.pid) for p in places),
                " ".join(",".join(map(str, ids)) for ids in attempt.cores),
                " ".join(",".join(map(str, ids)) for ids in attempt.gpus),
                timestamp(attempt.started_at),
                timestamp(attempt.finished_at),
                "" if attempt.exit_code is None else str(attempt.exit_code),
                attempt.reason or "",
                escape(attempt.message),
            )
        out.print(attempts)
    if events:
        table = Table(title="events", title_justify="left")
        table.add_column("time", no_wrap=True)
        table.add_column("event", no_wrap=True)
        table.add_column("message")
        for event in events:
            table.add_row(timestamp(event.time), event.kind, escape(event.message))
        out.print(table)


def logs(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="The job.")],
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="The job's stderr instead.")] = False,
    replica: Annotated[int, typer.Option(min=0, help="Which replica's log.")] = 0,
) -> None:
    """Prints a job's log as it was written (stdout of replica 0 unless told)."""
    stream = Stream.STDERR if stderr else Stream.STDOUT
    with connect(ctx) as client:
        for chunk in client.logs(job_id, follow=follow_, stream=stream, replica=replica):
            sys.stdout.write(chunk)
            sys.stdout.flush()


def cancel(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="The job.")]) -> None:
    """Cancels a job: a queued one at once, a running one after SIGTERM (and the grace)."""
    with connect(ctx) as client:
        job = client.cancel(job_id)
    if job.state == "cancelled":
        typer.echo(f"job {job.id} cancelled")
    else:
        typer.echo(f"job {job.id} {job.state}, stopping (cancelled)")


def resubmit(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="The job.")]) -> None:
    """Submits a job again as a new job (same command, environment and resources) and
    prints the new id."""
    with connect(ctx) as client:
        typer.echo(client.resubmit(job_id).id)


def wait(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="The job.")],
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Give up after this many seconds (exit 1).")
    ] = None,
) -> None:
    """Waits until a job ends and prints how; exits 0 if it succeeded, 1 otherwise."""
    with connect(ctx) as client:
        _finish(follow(client, job_id, timeout))


def follow(client: Client, job_id: int, timeout: float | None) -> JobView:
    """Polls the job until it ends, with a spinner on stderr; returns it as it ended.

    After ``timeout`` seconds the program ends with exit code 1 and one line.
    """
    from aios.client.client import TERMINAL

    deadline = None if timeout is None else time.monotonic() + timeout
    with stderr_console().status(f"job {job_id}") as status:
        while True:
            job = client.get(job_id)
            if job.state in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                fail(f"job {job_id} is still {job.state} after {timeout:g} s", FAILURE)
            waited, ran = job_times(job, time.time())
            status.update(f"job {job_id} {job.state} for {ran or waited}")
            time.sleep(POLL)


def _finish(job: JobView) -> None:
    """Prints how the job ended; exits 1 unless it succeeded."""
    line = f"job {job.id} {job.state}"
    if job.exit_code is not None:
        line += f" (exit {job.exit_code})"
    if job.message and job.message != job.state:
        line += f": {job.message}"
    typer.echo(line)
    if job.state != "succeeded":
        raise typer.Exit(FAILURE)
