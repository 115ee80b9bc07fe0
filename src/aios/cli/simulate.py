"""``aios simulate``: replays a cluster trace under several policies and compares them.

The trace is a file, the bundled Philly trace, or, with ``--from-history``, the control
plane's own finished jobs replayed on its current nodes (see
:mod:`aios.simulator.history`): what another policy would have done to this cluster's
workload. The command checks everything it is given (cluster size, policies, column
mapping, plot path) before it reads the trace, reads the trace once, replays it under
each policy with :func:`aios.simulator.simulate`, and prints a table (or JSON) on
stdout. Progress goes to stderr only: a bar per policy on a terminal, one line per
policy otherwise. User mistakes raise :class:`~aios.errors.InvalidInput`;
:mod:`aios.cli.main` turns them into exit code 2.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from aios.errors import InvalidInput, InvalidQuantity
from aios.resources import parse_duration, parse_memory
from aios.scheduler import PreemptionCost, make_policy
from aios.scheduler.costs import DEFAULT_CHECKPOINT_EVERY, DEFAULT_RESTORE
from aios.scheduler.policies import BOUND
from aios.simulator import (
    ClusterSpec,
    SimulationResult,
    TraceJob,
    bundled_trace_path,
    load_trace,
    parse_mapping,
)
from aios.simulator import simulate as replay_trace
from aios.simulator.history import replay_inputs
from aios.simulator.report import comparison_lines, format_table, plot, to_json

__all__ = ["TraceFormat", "parse_cost", "parse_policies", "replay", "simulate"]

PROGRESS_INTERVAL = 0.2
"""Seconds of wall time between two updates of a progress bar."""
PIPED_WIDTH = 240
"""Columns of stdout when it is not a terminal: wide enough that the table never wraps."""


class TraceFormat(StrEnum):
    """How the trace file is laid out."""

    PHILLY = "philly"
    CSV = "csv"


CLUSTER_OPTIONS = ("nodes", "gpus_per_node", "cpus_per_node", "mem_per_node")
"""The options that shape the simulated cluster: ``--from-history`` takes the real one."""
TRACE_OPTIONS = ("trace", "trace_format", "column_map")


def simulate(
    ctx: typer.Context,
    trace: Annotated[
        Path | None,
        typer.Option(
            "--trace",
            help="Trace file to replay (default: the bundled Philly trace).",
            show_default=False,
        ),
    ] = None,
    trace_format: Annotated[
        TraceFormat | None,
        typer.Option(
            "--format",
            help="Trace layout (default: csv with --map, else philly).",
            show_default=False,
        ),
    ] = None,
    column_map: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="Columns of a csv trace: submit=COL,duration=COL[,gpus=,cpus=,memory=,tenant=].",
        ),
    ] = None,
    nodes: Annotated[int, typer.Option(min=1, help="Nodes in the simulated cluster.")] = 55,
    gpus_per_node: Annotated[int, typer.Option(min=0, help="GPUs per node.")] = 8,
    cpus_per_node: Annotated[int, typer.Option(min=1, help="CPU cores per node.")] = 64,
    mem_per_node: Annotated[str, typer.Option(help="Memory per node, e.g. 512G.")] = "512G",
    policy: Annotated[
        str, typer.Option(help="Comma-separated policies, e.g. fifo,fifo+backfill,las,drf.")
    ] = "fifo,las,drf",
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, help="Replay only the earliest K jobs (with --from-history: the latest K)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON instead of a table.")
    ] = False,
    plot_path: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw the JCT CDF and GPU utilization into this PNG."),
    ] = None,
    tick: Annotated[
        float, typer.Option(min=0.0, help="Seconds between periodic scheduling cycles.")
    ] = 300.0,
    from_history: Annotated[
        bool,
        typer.Option(
            "--from-history",
            help="Replay the control plane's own finished jobs on its current nodes (admins).",
        ),
    ] = False,
    since: Annotated[
        str, typer.Option(help="With --from-history: how far back, e.g. 7d, 12h, 30m.")
    ] = "7d",
    restore: Annotated[
        str,
        typer.Option(
            help="Seconds a preempted job spends restoring when it runs again, e.g. 60s "
            "(jobs whose trace row has its own keep theirs).",
        ),
    ] = f"{DEFAULT_RESTORE:.0f}s",
    bound: Annotated[
        bool,
        typer.Option(
            "--bound/--no-bound",
            help="Also replay the clairvoyant bound (oracle-srtf) and show every policy's "
            "mean JCT as a multiple of it.",
        ),
    ] = True,
    checkpoint_every: Annotated[
        str,
        typer.Option(
            help="Work between two checkpoints of a job, e.g. 30m; a preemption loses "
            "the work since the last one (0: none is lost).",
        ),
    ] = f"{DEFAULT_CHECKPOINT_EVERY / 60:.0f}m",
) -> None:
    """Replays a cluster trace under each policy and prints one row of metrics per policy."""
    if from_history:
        _check_history_options(ctx)
    else:
        _check_given(ctx, ("since",), "applies only with --from-history")
    spec = _cluster_spec(nodes, gpus_per_node, cpus_per_node, mem_per_node)
    cost = parse_cost(restore, checkpoint_every)
    policies = parse_policies(policy)
    if bound and not any(name.split("+")[0] == BOUND for name in policies):
        policies.append(BOUND)
    if plot_path is not None and not plot_path.parent.is_dir():
        raise InvalidInput(f"--plot: directory {plot_path.parent} does not exist")
    if from_history:
        jobs, spec, source = _history_jobs(ctx, since, limit)
    else:
        jobs = _load_jobs(trace, trace_format, column_map, limit)
        source = f"{trace}" if trace is not None else "the bundled Philly trace"

    out = Console(soft_wrap=True)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPED_WIDTH
    if not as_json:
        out.print(
            f"Replaying {len(jobs):,} jobs of {source} on {spec.nodes} nodes × "
            f"{spec.gpus_per_node} GPUs under {', '.join(policies)}",
            highlight=False,
            markup=False,
        )

    results = replay(jobs, spec, policies, tick, Console(stderr=True), cost)

    if as_json:
        # Plain print: rich would wrap or highlight the JSON.
        print(to_json(results))
    else:
        out.print(format_table(results))
        for line in comparison_lines(results):
            out.print(line, highlight=False, markup=False)
    if plot_path is not None:
        try:
            plot(results, plot_path)
        except OSError as exc:
            raise InvalidInput(f"--plot: cannot write {plot_path}: {exc.strerror or exc}") from None
        print(f"wrote {plot_path}", file=sys.stderr)


def parse_policies(text: str) -> list[str]:
    """Returns the policy names that the comma-separated ``text`` lists, each normalized by
    :func:`aios.scheduler.make_policy` and listed once, in the order given. Raises
    InvalidInput naming the first unknown policy, or when ``text`` lists none."""
    names: list[str] = []
    for spec in text.split(","):
        if not spec.strip():
            continue
        try:
            name = make_policy(spec).name
        except InvalidInput as exc:
            raise InvalidInput(f"--policy: {exc}") from None
        if name not in names:
            names.append(name)
    if not names:
        raise InvalidInput(f"--policy names no policy (got {text!r})")
    return names


def parse_cost(restore: str, checkpoint_every: str) -> PreemptionCost:
    """Returns the preemption cost ``--restore`` and ``--checkpoint-every`` name; raises
    InvalidInput naming the option whose duration cannot be read."""
    seconds: list[float] = []
    for option, text in (("--restore", restore), ("--checkpoint-every", checkpoint_every)):
        try:
            seconds.append(parse_duration(text))
        except InvalidQuantity as exc:
            raise InvalidInput(f"{option}: {exc}") from None
    return PreemptionCost(seconds[0], seconds[1] or None)


def replay(
    jobs: Sequence[TraceJob],
    spec: ClusterSpec,
    policies: Sequence[str],
    tick: float,
    progress: Console,
    cost: PreemptionCost | None = None,
) -> list[SimulationResult]:
    """Replays ``jobs`` on ``spec`` under each policy in turn, charging preemptions
    ``cost`` (default: :class:`PreemptionCost`'s defaults), and returns the results in the
    same order. Shows a bar per policy on ``progress`` when it is a terminal; otherwise
    writes one line per policy there once its replay is done."""
    cost = PreemptionCost() if cost is None else cost
    results: list[SimulationResult] = []
    if not progress.is_terminal:
        for name in policies:
            result = replay_trace(jobs, spec, name, tick=tick, cost=cost)
            progress.print(
                f"replayed {name}: {len(jobs):,} jobs in {result.seconds:.1f} s",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            results.append(result)
        return results
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # No redirection: a bar must never capture what the command prints on stdout.
    with Progress(*columns, console=progress, redirect_stdout=False, redirect_stderr=False) as bars:
        for name in policies:
            task = bars.add_task(f"replaying {name}", total=len(jobs))
            advance = _bar_updater(bars, task)
            result = replay_trace(jobs, spec, name, tick=tick, progress=advance, cost=cost)
            bars.update(task, completed=len(jobs), description=f"replayed {name}")
            results.append(result)
    return results


def _bar_updater(bars: Progress, task: TaskID) -> Callable[[int, int], None]:
    """Returns a progress callback that moves ``task`` at most once per
    :data:`PROGRESS_INTERVAL`: the simulator reports after every instant of simulated time,
    far more often than a bar can usefully move."""
    last = -PROGRESS_INTERVAL

    def update(ended: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL:
            last = now
            bars.update(task, completed=ended, total=total)

    return update


def _check_given(ctx: typer.Context, names: Sequence[str], why: str) -> None:
    """Raises InvalidInput naming the first option of ``names`` given on the command
    line (not left at its default)."""
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in {"DEFAULT", "DEFAULT_MAP"}:
            option = "--" + {"trace_format": "format", "column_map": "map"}.get(
                name, name.replace("_", "-")
            )
            raise InvalidInput(f"{option} {why}")


def _check_history_options(ctx: typer.Context) -> None:
    _check_given(ctx, TRACE_OPTIONS, "does not apply with --from-history (it replays the history)")
    _check_given(
        ctx, CLUSTER_OPTIONS, "does not apply with --from-history (it replays on the real nodes)"
    )


def _history_jobs(
    ctx: typer.Context, since: str, limit: int | None
) -> tuple[list[TraceJob], ClusterSpec, str]:
    """Fetches the control plane's history of the last ``since`` and returns its trace,
    its cluster (its nodes and queues as they are now) and the words that name it."""
    from aios.cli.remote import connect

    try:
        window = parse_duration(since)
    except InvalidQuantity as exc:
        raise InvalidInput(f"--since: {exc}") from None
    if window <= 0:
        raise InvalidInput(f"--since must be longer than 0 seconds, got {since!r}")
    with connect(ctx) as client:
        history = client.history(since=window, limit=limit)
        url = client.url
    if not history.jobs:
        raise InvalidInput(
            f"--from-history: no job ran and ended at {url} in the last {since}; nothing to replay"
        )
    replay_input = replay_inputs(history)
    return replay_input.trace, replay_input.cluster, f"the history of {url} (last {since})"


def _cluster_spec(nodes: int, gpus: int, cpus: int, memory: str) -> ClusterSpec:
    try:
        memory_bytes = parse_memory(memory)
    except InvalidQuantity as exc:
        raise InvalidInput(f"--mem-per-node: {exc}") from None
    return ClusterSpec(nodes, gpus, cpus, memory_bytes)


def _load_jobs(
    trace: Path | None,
    trace_format: TraceFormat | None,
    column_map: str | None,
    limit: int | None,
) -> list[TraceJob]:
    """Reads the trace the options name; the checks on ``--format`` and ``--map`` come
    first so that their messages name the options rather than the loader's arguments."""
    fmt = trace_format or (TraceFormat.CSV if column_map is not None else TraceFormat.PHILLY)
    if fmt is TraceFormat.CSV and column_map is None:
        raise InvalidInput("--format csv needs --map submit=COL,duration=COL[,gpus=COL,...]")
    if fmt is TraceFormat.PHILLY and column_map is not None:
        raise InvalidInput("--map applies only to --format csv")
    mapping = None
    if column_map is not None:
        try:
            mapping = parse_mapping(column_map)
        except InvalidInput as exc:
            raise InvalidInput(f"--map: {exc}") from None
    path = trace if trace is not None else bundled_trace_path()
    return load_trace(path, fmt.value, mapping, limit=limit)
