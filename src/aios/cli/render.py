"""How the CLI writes what the control plane returns: consoles, tables and quantities.

Tables and results go to stdout; progress (spinners, live tables) to stderr, so that
``aios ps > jobs.txt`` or ``ID=$(aios submit -- …)`` capture only the answer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aios.resources.quantity import format_bytes

if TYPE_CHECKING:
    from aios.control.specs import JobView, PipelineView

__all__ = [
    "PIPED_WIDTH",
    "amount",
    "cores",
    "duration",
    "job_resources",
    "job_times",
    "pipeline_table",
    "placement",
    "state",
    "stderr_console",
    "stdout_console",
    "timestamp",
    "usage_of",
]

PIPED_WIDTH = 240
"""Columns of stdout when it is not a terminal: wide enough that a table never wraps."""
STATE_STYLES = {
    "queued": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "failing": "red",
    "cancelled": "magenta",
    "cancelling": "magenta",
    "upstream_failed": "red",
    "unschedulable": "red",
}


def stdout_console() -> Console:
    """The console for answers; as wide as a table needs when stdout is not a terminal."""
    console = Console(soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    return console


def stderr_console() -> Console:
    return Console(stderr=True)


def state(text: str) -> str:
    """``text`` in rich markup coloured by what the state means."""
    style = STATE_STYLES.get(text)
    return f"[{style}]{text}[/{style}]" if style else text


def cores(millicores: float) -> str:
    """Cores from millicores, without a needless fraction: 2000 → ``2``, 500 → ``0.5``."""
    return f"{millicores / 1000:g}"


def amount(resource: str, value: float) -> str:
    """One amount of ``resource`` in the scheduler's units, written for people."""
    if resource == "cpu":
        return cores(value)
    if resource == "memory":
        return format_bytes(int(value))
    return f"{value:g}"


def duration(seconds: float | None) -> str:
    """``seconds`` as ``42s``, ``3m07s``, ``2h05m`` or ``3d04h``; empty for None."""
    if seconds is None:
        return ""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def timestamp(seconds: float | None) -> str:
    """A wall-clock time in local time, ``2024-03-01 08:00:00``; empty for None."""
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def job_resources(job: JobView) -> str:
    """What one replica asks for, and how many replicas: ``2 cpu 4.0Gi 1 gpu ×2``."""
    parts = [f"{job.cpus:g} cpu", format_bytes(job.memory)]
    if job.gpus:
        parts.append(f"{job.gpus} gpu" + (f" {job.gpu_kind}" if job.gpu_kind else ""))
    if job.replicas > 1:
        parts.append(f"×{job.replicas}")
    return " ".join(parts)


def job_times(job: JobView, now: float) -> tuple[str, str]:
    """How long the job waited to start, and how long it has run (so far)."""
    started = job.started_at
    waited = (started if started is not None else job.finished_at or now) - job.submitted_at
    ran = None if started is None else (job.finished_at or now) - started
    return duration(waited), duration(ran)


def placement(job: JobView) -> tuple[str, str, str]:
    """Node, cores and GPUs of the job's latest attempt (empty when it has none)."""
    if not job.attempts:
        return "", "", ""
    latest = job.attempts[-1]
    return latest.node, _ids(latest.cores), _ids(latest.gpus)


def _ids(per_replica: Iterable[Iterable[int]]) -> str:
    return " ".join(",".join(str(i) for i in ids) for ids in per_replica if ids)


def usage_of(resource: str, used: Mapping[str, int], limit: Mapping[str, int] | None) -> str:
    """``used / quota`` of one resource of a queue; ∞ where there is no quota."""
    cap = "∞" if limit is None or resource not in limit else amount(resource, limit[resource])
    return f"{amount(resource, used.get(resource, 0))} / {cap}"


def pipeline_table(view: PipelineView, now: float) -> Table:
    """A pipeline's steps in submission order: state, job, times, exit code, message."""
    table = Table(title=f"pipeline {view.id} {escape(view.name)}: {state(view.state)}")
    for column in ("step", "job", "state", "wait", "runtime", "exit", "message"):
        table.add_column(column, no_wrap=column != "message")
    for name, job in view.steps.items():
        waited, ran = job_times(job, now)
        table.add_row(
            escape(name),
            str(job.id),
            state(job.state),
            waited,
            ran,
            "" if job.exit_code is None else str(job.exit_code),
            escape(job.message),
        )
    return table
