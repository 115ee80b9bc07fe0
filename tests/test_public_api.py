"""The public surface of each package: a change here is a change for every user."""

from __future__ import annotations

import aios.resources
import aios.scheduler
import aios.simulator


def test_resources_public_names() -> None:
    """aios.resources exports exactly its documented names."""
    assert sorted(aios.resources.__all__) == sorted(
        [
            "CPU",
            "GPU",
            "MEMORY",
            "Allocation",
            "GpuDevice",
            "Node",
            "Resources",
            "detect_gpus",
            "detect_local_node",
            "format_bytes",
            "parse_cpu",
            "parse_duration",
            "parse_memory",
        ]
    )


def test_scheduler_public_names() -> None:
    """aios.scheduler exports the cycle, its decisions, jobs, queues, state and policies."""
    assert sorted(aios.scheduler.__all__) == sorted(
        [
            "FREE",
            "SUCCESS",
            "TERMINAL_STATES",
            "Bind",
            "ClusterState",
            "Code",
            "CycleResult",
            "Decision",
            "Job",
            "JobKind",
            "JobState",
            "NodeState",
            "Policy",
            "Preempt",
            "PreemptionCost",
            "Queue",
            "RunningJob",
            "Status",
            "Unschedulable",
            "UpstreamFailed",
            "available_policies",
            "check_quota",
            "cycle",
            "make_live_policy",
            "make_policy",
        ]
    )


def test_simulator_public_names() -> None:
    """aios.simulator exports trace loading, the replay and its metrics."""
    assert sorted(aios.simulator.__all__) == sorted(
        [
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
    )


def test_every_public_name_resolves() -> None:
    """Every name in __all__ is importable from its package."""
    for module in (aios.resources, aios.scheduler, aios.simulator):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
