"""The trace simulator: replays cluster traces through the very scheduler the control
plane runs, on a simulated clock, and measures the outcome."""

from aios.simulator.metrics import JobOutcome, Metrics, jain_index, summarize
from aios.simulator.runner import ClusterSpec, SimulationResult, jobs_from_trace, simulate
from aios.simulator.traces import (
    ColumnMapping,
    TraceJob,
    bundled_trace_path,
    load_trace,
    parse_mapping,
)

__all__ = [
    "ClusterSpec",
    "ColumnMapping",
    "JobOutcome",
    "Metrics",
    "SimulationResult",
    "TraceJob",
    "bundled_trace_path",
    "jain_index",
    "jobs_from_trace",
    "load_trace",
    "parse_mapping",
    "simulate",
    "summarize",
]
