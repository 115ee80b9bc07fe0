"""Ray alone, the peer of ``bench_ray.py``: the same commands as Ray tasks on the same
cluster, with no AIOS in the way; and the fair-share measures both are judged by.

A task runs its command with ``subprocess.run``, as an AIOS job runs it, and returns
when it started and ended by the wall clock (the nodes of ``ray.cluster_utils.Cluster``
share this machine's clock, so the times compare with the driver's).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aios.simulator.fairness import share_ratios
from aios.simulator.metrics import JobOutcome, jain_index

GIB = 1 << 30
GPUS = 6
"""Fake GPUs of the cluster: 3 worker nodes of 2."""


def start_cluster(workers: int = 3, cpus: int = 2, gpus: int = 2) -> Any:
    """A Ray cluster on this machine: a head with no CPUs (nothing runs there) and
    ``workers`` nodes of ``cpus`` cores and ``gpus`` fake GPUs each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(workers):
        cluster.add_node(num_cpus=cpus, num_gpus=gpus, memory=2 * GIB)
    cluster.wait_for_nodes()
    return cluster


def _run(command: Sequence[str]) -> tuple[float, float]:
    started = time.time()
    subprocess.run(list(command), check=True)
    return started, time.time()


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One task: who asked, when it was submitted (driver's clock), started and ended."""

    tenant: str
    submitted: float
    started: float
    finished: float


def dispatch_latency(n: int) -> list[float]:
    """Seconds from ``.remote()`` to the result of ``true`` in a one-CPU task, one at a
    time (the driver must be connected)."""
    import ray

    task = ray.remote(num_cpus=1)(_run)
    ray.get([task.remote(["true"]) for _ in range(6)])  # warm the workers
    latencies = []
    for _ in range(n):
        sent = time.perf_counter()
        ray.get(task.remote(["true"]))
        latencies.append(time.perf_counter() - sent)
    return latencies


def throughput(n: int, cpus: float) -> float:
    """Tasks per second for ``n`` tasks of ``true`` asking ``cpus`` each, all submitted
    at once, first submit to last result."""
    import ray

    task = ray.remote(num_cpus=cpus)(_run)
    ray.get([task.remote(["true"]) for _ in range(12)])
    started = time.perf_counter()
    ray.get([task.remote(["true"]) for _ in range(n)])
    return n / (time.perf_counter() - started)


def fair_share(waves: Sequence[tuple[float, str, int]], seconds: float) -> list[TaskRun]:
    """Submits, in order, ``count`` one-GPU tasks of ``sleep seconds`` for each wave
    ``(offset, tenant, count)`` at ``offset`` seconds from the start, and returns every
    task's run. Ray has no queues: its tasks of one shape wait in one line."""
    import ray

    # A GPU task's worker exits after one task by default (max_calls=1, ray#29624): a
    # new Python worker per task, about 4 s each on this machine. The fake GPUs hold no
    # memory to release, so workers are reused, and started before the clock runs (as
    # AIOS's node agents are started before its jobs).
    task = ray.remote(num_cpus=1, num_gpus=1, max_calls=0)(_run)
    ray.get([task.remote(["true"]) for _ in range(12)])
    start = time.time()
    pending: list[tuple[str, float, Any]] = []
    for offset, tenant, count in waves:
        time.sleep(max(0.0, start + offset - time.time()))
        submitted = time.time()
        pending += [(tenant, submitted, task.remote(["sleep", str(seconds)])) for _ in range(count)]
    runs = []
    for tenant, submitted, ref in pending:
        began, ended = ray.get(ref)
        runs.append(TaskRun(tenant, submitted, began, ended))
    return runs


Run = tuple[str, float, list[tuple[float, float]]]
"""One job: tenant, submit time, the (start, end) of each attempt that held a GPU."""


@dataclass(frozen=True, slots=True)
class Fairness:
    """What one run of the fair-share workload gave (per tenant, by name)."""

    window: dict[str, float]
    """Share of the GPU time held in the contended window."""
    window_jain: float
    ratios: dict[str, float]
    """GPU time received over the max-min fair entitlement (``share_ratios``)."""
    ratio_jain: float
    window_s: float
    makespan: float
    preempted: float


def fairness(runs: Sequence[Run]) -> Fairness:
    """The contended window runs from the last tenant's first submit to the first
    tenant's last finish: every tenant wants GPUs all through it."""
    tenants = sorted({tenant for tenant, _, _ in runs})
    low = max(min(s for t, s, _ in runs if t == tenant) for tenant in tenants)
    high = min(max(e for t, _, ats in runs if t == tenant for _, e in ats) for tenant in tenants)
    held = dict.fromkeys(tenants, 0.0)
    steps: dict[str, dict[float, int]] = {t: {} for t in tenants}
    for tenant, _, attempts in runs:
        for began, ended in attempts:
            held[tenant] += max(0.0, min(ended, high) - max(began, low))
            steps[tenant][began] = steps[tenant].get(began, 0) + 1
            steps[tenant][ended] = steps[tenant].get(ended, 0) - 1
    series = {}
    for tenant, changes in steps.items():
        level, points = 0, []
        for moment in sorted(changes):
            level += changes[moment]
            points.append((moment, level))
        series[tenant] = points
    outcomes = [
        JobOutcome(str(i), tenant, submit, 0.0, 1, attempts[0][0], attempts[-1][1])
        for i, (tenant, submit, attempts) in enumerate(runs)
    ]
    ratios = share_ratios(outcomes, GPUS, allocations=series)
    window = {t: held[t] / (sum(held.values()) or 1.0) for t in tenants}
    return Fairness(
        window=window,
        window_jain=jain_index(list(window.values())),
        ratios=ratios,
        ratio_jain=jain_index(list(ratios.values())),
        window_s=high - low,
        makespan=max(e for _, _, ats in runs for _, e in ats) - min(s for _, s, _ in runs),
        preempted=sum(len(ats) - 1 for _, _, ats in runs),
    )


def median_fairness(results: Sequence[Fairness]) -> Fairness:
    tenants = results[0].window
    return Fairness(
        window={t: statistics.median(r.window[t] for r in results) for t in tenants},
        window_jain=statistics.median(r.window_jain for r in results),
        ratios={t: statistics.median(r.ratios.get(t, 0.0) for r in results) for t in tenants},
        ratio_jain=statistics.median(r.ratio_jain for r in results),
        window_s=statistics.median(r.window_s for r in results),
        makespan=statistics.median(r.makespan for r in results),
        preempted=statistics.median(r.preempted for r in results),
    )
