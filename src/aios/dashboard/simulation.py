"""The Simulator page's routes (``/api/v1/simulator``): replay a trace (the bundled
Philly trace or an uploaded CSV) under several policies, and answer with the comparison
table and the series the JCT and utilization plots draw. The cluster's own history (its
finished jobs, replayed on its current nodes) is what ``aios simulate --from-history``
replays, through the same :func:`~aios.simulator.history.replay_inputs`.

Admin only: a replay costs CPU time on the control plane. It runs in a worker thread
and is bounded by :data:`MAX_JOBS`, so a page gets its answer in seconds.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from aios.control.deps import User
from aios.control.history_api import DEFAULT_WINDOW
from aios.errors import InvalidInput
from aios.scheduler.policies import available_policies, make_policy
from aios.simulator import ClusterSpec, SimulationResult, TraceJob, load_trace, simulate
from aios.simulator.history import History, replay_inputs
from aios.simulator.metrics import utilization_series
from aios.simulator.traces import bundled_trace_path

__all__ = ["MAX_JOBS", "SimulationRequest", "simulator_router"]

MAX_JOBS = 2000
CDF_POINTS = 50
SERIES_POINTS = 100
MAX_UPLOAD = 8 << 20


class SimulatorOptions(BaseModel):
    traces: list[str]
    policies: list[str]
    history: bool
    nodes: int
    gpus_per_node: int


class SimulationRequest(BaseModel):
    trace: Literal["philly", "upload", "history"] = "philly"
    text: str | None = Field(None, max_length=MAX_UPLOAD, description="a Philly-format CSV")
    policies: list[str] = Field(min_length=1, max_length=8)
    limit: int = Field(500, ge=1, le=MAX_JOBS)
    nodes: int | None = Field(None, ge=1, le=1000)
    gpus_per_node: int | None = Field(None, ge=0, le=64)
    since: float | None = Field(None, ge=0, description="history: seconds back from now")


class PolicyOutcome(BaseModel):
    policy: str
    metrics: dict[str, float | int | str]
    jct_cdf: list[tuple[float, float]]
    utilization: list[tuple[float, float]]


class SimulationAnswer(BaseModel):
    trace: str
    jobs: int
    nodes: int
    gpus_per_node: int
    results: list[PolicyOutcome]


def _cdf(values: Sequence[float]) -> list[tuple[float, float]]:
    ordered = sorted(values)
    if not ordered:
        return []
    step = max(len(ordered) // CDF_POINTS, 1)
    points = [(ordered[i], (i + 1) / len(ordered)) for i in range(0, len(ordered), step)]
    if points[-1][0] != ordered[-1]:
        points.append((ordered[-1], 1.0))
    return points


def outcome(result: SimulationResult) -> PolicyOutcome:
    """One policy's row of the table and its two plots' series."""
    jcts = [o.finish - o.submit for o in result.outcomes if o.finish is not None]
    samples = result.busy_samples
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    series = (
        utilization_series(samples, result.gpu_capacity, span / SERIES_POINTS) if span > 0 else []
    )
    return PolicyOutcome(
        policy=result.metrics.policy,
        metrics=result.metrics.as_dict(),
        jct_cdf=_cdf(jcts),
        utilization=series,
    )


def _trace(request: SimulationRequest) -> tuple[str, list[TraceJob]]:
    if request.trace == "philly":
        return "bundled Philly trace", load_trace(bundled_trace_path(), limit=request.limit)
    if not request.text:
        raise InvalidInput("text: an uploaded trace needs the CSV's text")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.csv"
        path.write_text(request.text)
        return "uploaded trace", load_trace(path, limit=request.limit)


HistorySource = Callable[[float, int], History]
"""The cluster's finished jobs of the last ``since`` seconds (the most recent
``limit``), with its current nodes and queues."""


def simulator_router(
    cluster_shape: Callable[[], tuple[int, int]], history: HistorySource
) -> APIRouter:
    """``cluster_shape`` gives the live cluster's (nodes, most GPUs on one node): the
    default simulated cluster; ``history`` the cluster's own history, replayed on its
    current nodes."""
    router = APIRouter(prefix="/simulator", tags=["simulator"])

    @router.get("", response_model=SimulatorOptions)
    def options(user: User) -> SimulatorOptions:
        user.require_admin("run the simulator")
        nodes, gpus = cluster_shape()
        return SimulatorOptions(
            traces=["philly", "upload", "history"],
            policies=available_policies(),
            history=True,
            nodes=nodes,
            gpus_per_node=gpus,
        )

    @router.post("/run", response_model=SimulationAnswer)
    async def run(request: SimulationRequest, user: User) -> SimulationAnswer:
        """Replays the trace under each policy, one after the other."""
        user.require_admin("run the simulator")
        for name in request.policies:
            make_policy(name)  # an unknown policy is refused before any replay
        shape = cluster_shape()
        chosen = ClusterSpec(
            nodes=request.nodes or shape[0],
            gpus_per_node=request.gpus_per_node if request.gpus_per_node is not None else shape[1],
        )

        def replay() -> SimulationAnswer:
            if request.trace == "history":  # on the cluster's current nodes
                window = request.since if request.since is not None else DEFAULT_WINDOW
                inputs = replay_inputs(history(window, request.limit))
                label, trace, spec = "cluster's own history", inputs.trace, inputs.cluster
            else:
                (label, trace), spec = _trace(request), chosen
            results = [outcome(simulate(trace, spec, name)) for name in request.policies]
            return SimulationAnswer(
                trace=label,
                jobs=len(trace),
                nodes=spec.nodes,
                gpus_per_node=spec.gpus_per_node,
                results=results,
            )

        return await asyncio.to_thread(replay)

    return router
