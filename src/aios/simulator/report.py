"""Presenting simulation results: a table, JSON, a comparison of policies, and a figure.

Everything takes the :class:`~aios.simulator.runner.SimulationResult` list of one replay,
one result per policy, in the order the policies ran. The table and the comparison lines
are for people (hours, days, percent); the JSON keeps the simulator's units (seconds and
fractions) under the names of :meth:`~aios.simulator.metrics.Metrics.as_dict`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from aios.scheduler.policies import BOUND
from aios.simulator.metrics import utilization_series
from aios.simulator.runner import SimulationResult

__all__ = ["bound_multiple", "comparison_lines", "find_bound", "format_table", "plot", "to_json"]

HOUR = 3600.0
DAY = 86400.0
UTILIZATION_BUCKETS = 200
"""The utilization panel averages busy GPUs over about this many buckets of the replay."""
MIN_PLOTTED_JCT = 1.0
"""JCTs below one second are drawn at one second: the CDF's x axis is logarithmic."""

_NUMERIC_COLUMNS = (
    "jobs",
    "completed",
    "unschedulable",
    "mean JCT (h)",
    "median JCT (h)",
    "p95 JCT (h)",
    "p99 JCT (h)",
    "mean queueing (h)",
    "makespan (d)",
    "GPU util %",
    "Jain's index",
    "preemptions",
    "GPU-h lost",
    "restore (h)",
    "× bound",
    "replay (s)",
)


def find_bound(results: Sequence[SimulationResult]) -> SimulationResult | None:
    """The first result of the clairvoyant bound (``oracle-srtf``, with any options),
    or None when it did not run."""
    for result in results:
        if result.metrics.policy.split("+")[0] == BOUND:
            return result
    return None


def bound_multiple(result: SimulationResult, bound: SimulationResult | None) -> float | None:
    """``result``'s mean JCT as a multiple of the bound's; None without a bound or when
    the bound's mean JCT is 0."""
    if bound is None or bound.metrics.mean_jct <= 0:
        return None
    return result.metrics.mean_jct / bound.metrics.mean_jct


def format_table(results: Sequence[SimulationResult]) -> Table:
    """Returns a table with one row per result: counts, JCT percentiles and queueing delay in
    hours, makespan in days, GPU utilization in percent, Jain's index, preemptions, the
    GPU-hours they cost (work done again and restores) and the hours spent restoring,
    the mean JCT as a multiple of the clairvoyant bound's (``oracle-srtf``, when it ran;
    blank otherwise), and the wall-clock seconds the replay took."""
    bound = find_bound(results)
    table = Table(title="Policy comparison", title_justify="left")
    table.add_column("policy", no_wrap=True)
    for name in _NUMERIC_COLUMNS:
        table.add_column(name, justify="right")
    for result in results:
        m = result.metrics
        table.add_row(
            m.policy,
            f"{m.jobs:,}",
            f"{m.completed:,}",
            f"{m.unschedulable:,}",
            f"{m.mean_jct / HOUR:.2f}",
            f"{m.median_jct / HOUR:.2f}",
            f"{m.p95_jct / HOUR:.2f}",
            f"{m.p99_jct / HOUR:.2f}",
            f"{m.mean_queueing_delay / HOUR:.2f}",
            f"{m.makespan / DAY:.2f}",
            f"{100.0 * m.gpu_utilization:.1f}",
            f"{m.jain_index:.3f}",
            f"{m.preemptions:,}",
            f"{m.lost_gpu_seconds / HOUR:,.0f}",
            f"{m.restore_seconds / HOUR:,.1f}",
            _times(bound_multiple(result, bound)),
            f"{result.seconds:.1f}",
        )
    return table


def to_json(results: Sequence[SimulationResult]) -> str:
    """Returns a JSON list with one object per result: the fields of ``Metrics.as_dict()``
    (times in seconds, utilization as a fraction) plus ``replay_seconds`` (wall clock),
    ``cycles`` (scheduling cycles run) and ``jct_vs_bound`` (mean JCT over the bound's,
    null when the bound did not run)."""
    bound = find_bound(results)
    rows = [
        {
            **result.metrics.as_dict(),
            "replay_seconds": result.seconds,
            "cycles": result.cycles,
            "jct_vs_bound": bound_multiple(result, bound),
        }
        for result in results
    ]
    return json.dumps(rows, indent=2, allow_nan=False)


def comparison_lines(results: Sequence[SimulationResult]) -> list[str]:
    """Returns the headline comparisons the results allow: the mean JCT of ``las`` against
    ``fifo`` when both ran, Jain's index of ``drf`` against ``fifo`` when both ran, and
    every policy's mean JCT as a multiple of the bound's when the bound ran. The
    first result of each name counts; a ratio that would divide by zero is left out."""
    by_name: dict[str, SimulationResult] = {}
    for result in results:
        by_name.setdefault(result.metrics.policy, result)
    fifo, las, drf = by_name.get("fifo"), by_name.get("las"), by_name.get("drf")
    lines: list[str] = []
    if fifo is not None and las is not None and las.metrics.mean_jct > 0:
        ratio = fifo.metrics.mean_jct / las.metrics.mean_jct
        lines.append(f"mean JCT las vs fifo: {ratio:.2f}× better")
    if fifo is not None and drf is not None:
        drf_index, fifo_index = drf.metrics.jain_index, fifo.metrics.jain_index
        lines.append(f"Jain's index drf vs fifo: {drf_index:.3f} vs {fifo_index:.3f}")
    bound = find_bound(results)
    multiples = [
        f"{name} {_times(bound_multiple(result, bound))}"
        for name, result in by_name.items()
        if result is not bound and bound_multiple(result, bound) is not None
    ]
    if bound is not None and multiples:
        lines.append(f"mean JCT vs the bound ({bound.metrics.policy}): {', '.join(multiples)}")
    return lines


def _times(multiple: float | None) -> str:
    return "" if multiple is None else f"{multiple:.2f}×"


def plot(results: Sequence[SimulationResult], path: Path) -> None:
    """Draws three panels into the PNG file ``path``: the CDF of job completion times per
    policy (hours, log scale), the GPU utilization over time per policy, and the
    GPU-hours each policy lost to preemption (bars labelled with the preemptions). Draws with
    matplotlib's Agg canvas, so it needs no display. Raises OSError if ``path`` cannot be
    written."""
    # Imported here: matplotlib takes longer to import than the rest of the CLI together.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(18.0, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    cdf, usage, costs = figure.subplots(1, 3)

    for result in results:
        jcts = sorted(
            max(outcome.finish - outcome.submit, MIN_PLOTTED_JCT) / HOUR
            for outcome in result.outcomes
            if outcome.finish is not None
        )
        if jcts:
            fractions = [(i + 1) / len(jcts) for i in range(len(jcts))]
            cdf.step(jcts, fractions, where="post", label=result.metrics.policy)
    cdf.set_xscale("log")
    cdf.set_xlabel("job completion time (hours)")
    cdf.set_ylabel("fraction of completed jobs")
    cdf.set_ylim(0.0, 1.0)
    cdf.set_title("JCT CDF")
    cdf.grid(True, which="both", alpha=0.3)

    for result in results:
        samples = result.busy_samples
        span = samples[-1][0] - samples[0][0] if samples else 0.0
        if span <= 0:
            continue
        series = utilization_series(samples, result.gpu_capacity, span / UTILIZATION_BUCKETS)
        days = [(start - samples[0][0]) / DAY for start, _ in series]
        percent = [100.0 * value for _, value in series]
        usage.plot(days, percent, label=result.metrics.policy, linewidth=1.0)
    usage.set_xlabel("time since the first submission (days)")
    usage.set_ylabel("GPU utilization (%)")
    usage.set_ylim(0.0, 105.0)
    usage.set_title("GPU utilization over time")
    usage.grid(True, alpha=0.3)

    names = [result.metrics.policy for result in results]
    lost = [result.metrics.lost_gpu_seconds / HOUR for result in results]
    bars = costs.bar(range(len(results)), lost, color="tab:red", alpha=0.7)
    costs.bar_label(bars, labels=[f"{r.metrics.preemptions:,} preempt." for r in results])
    costs.set_xticks(range(len(results)), names, rotation=20, fontsize="small")
    costs.set_ylabel("GPU-hours lost to preemption")
    costs.set_title("Preemption cost (work redone + restores)")
    costs.grid(True, axis="y", alpha=0.3)

    for axes in (cdf, usage):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    figure.savefig(path, format="png", dpi=110)
