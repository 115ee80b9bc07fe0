"""Local executor throughput: no-op replicas launched and reported per second.

Usage: python benchmarks/bench_executor.py [-n 1000]

Each row runs N replicas of ``true`` to completion. Baseline, measured in the same run:
``subprocess.Popen(["true"])`` then ``wait()``, one at a time — a bare process with no
wrapper, no exit record, no isolation and no watcher thread. The executor rows go
through everything a job gets: the /bin/sh wrapper that records the exit, a new
session, the AIOS_* environment, a pidfd and the watcher thread, exits taken with
``poll()`` when ``on_exit`` fires. "2 in flight, pinned" is the control plane's shape on
this 2-core machine: one-CPU jobs, each pinned to the core it was given, a new one
launched as soon as one ends. ``launch()`` is the time the caller spends in it. The
lifeline row is a Ray node agent's shape: each wrapper also forks the child that ends
the replica if the agent dies.

Wall-clock rates on a shared 2-core machine move with its load (printed); the CPU
columns do not: CPU time of this process (launching, the watcher thread) and of the
processes it reaped (wrapper and command), per replica. At 200 jobs/s two cores give
10 ms of CPU to each job, control plane included.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aios.executors import LaunchSpec, LocalExecutor
from aios.executors.isolation import MemoryCgroups


def popen_serial(n: int) -> list[float]:
    launches = []
    for _ in range(n):
        t = time.perf_counter()
        child = subprocess.Popen(["true"])
        launches.append(time.perf_counter() - t)
        child.wait()
    return launches


def popen_two(n: int) -> list[float]:
    launches: list[float] = []
    running: list[subprocess.Popen[bytes]] = []
    for _ in range(n):
        if len(running) == 2:
            running.pop(0).wait()
        t = time.perf_counter()
        running.append(subprocess.Popen(["true"]))
        launches.append(time.perf_counter() - t)
    for child in running:
        child.wait()
    return launches


def executor_run(
    workdir: Path,
    in_flight: int | None,
    *,
    pinned: bool,
    memory: int = 0,
    isolation: Literal["auto", "rlimit"] = "auto",
    lifeline: bool = False,
) -> Callable[[int], list[float]]:
    def run(n: int) -> list[float]:
        event = threading.Event()
        executor = LocalExecutor(on_exit=event.set, isolation=isolation, lifeline=lifeline)
        free_cores = sorted(os.sched_getaffinity(0))
        core_of: dict[int, int] = {}
        launches: list[float] = []
        done = launched = 0
        limit = n if in_flight is None else in_flight
        try:
            while done < n:
                while launched < n and launched - done < limit:
                    cores: tuple[int, ...] = (free_cores.pop(0),) if pinned else ()
                    spec = LaunchSpec(
                        job_id="bench",
                        attempt=1,
                        replica=launched,
                        command=["true"],
                        workdir=workdir,
                        stdout=workdir / "stdout.log",
                        stderr=workdir / "stderr.log",
                        checkpoint_dir=workdir,
                        cores=cores,
                        memory=memory,
                    )
                    t = time.perf_counter()
                    executor.launch(spec)
                    launches.append(time.perf_counter() - t)
                    if cores:
                        core_of[launched] = cores[0]
                    launched += 1
                event.wait(5)
                event.clear()
                for ended in executor.poll():
                    done += 1
                    if pinned:
                        free_cores.append(core_of.pop(ended.replica))
        finally:
            executor.close()
        return launches

    return run


@dataclass(frozen=True)
class Row:
    rate: float
    """Replicas run to completion per second of wall time."""
    launch_p50: float
    launch_p99: float
    """Seconds spent in one launch (``Popen()`` for the baselines)."""
    parent_cpu: float
    """CPU seconds of this process, all threads, per replica."""
    child_cpu: float
    """CPU seconds of the reaped processes (wrappers and commands) per replica."""


def measure(run: Callable[[int], list[float]], n: int) -> Row:
    before, children_before = time.process_time(), _children_cpu()
    started = time.perf_counter()
    launches = sorted(run(n))
    elapsed = time.perf_counter() - started
    parent = time.process_time() - before
    children = _children_cpu() - children_before
    p99 = launches[int(len(launches) * 0.99) - 1]
    return Row(n / elapsed, statistics.median(launches), p99, parent / n, children / n)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="replicas per row")
    n = parser.parse_args().n
    cgroups = MemoryCgroups.detect()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows: list[tuple[str, Callable[[int], list[float]]]] = [
            ('Popen(["true"]) + wait, 1 at a time (baseline)', popen_serial),
            ('Popen(["true"]), 2 in flight', popen_two),
            ("LocalExecutor, 1 in flight", executor_run(workdir, 1, pinned=False)),
            ("LocalExecutor, 2 in flight, pinned", executor_run(workdir, 2, pinned=True)),
            (
                "LocalExecutor, 2 in flight, pinned, lifeline (Ray agents)",
                executor_run(workdir, 2, pinned=True, lifeline=True),
            ),
        ]
        if cgroups is not None:
            rows.append(
                (
                    f"LocalExecutor, 2 in flight, pinned, 256 MiB {cgroups.mode}",
                    executor_run(workdir, 2, pinned=True, memory=256 << 20),
                )
            )
        rows.append(
            (
                "LocalExecutor, 2 in flight, pinned, 256 MiB rlimit+watchdog",
                executor_run(workdir, 2, pinned=True, memory=256 << 20, isolation="rlimit"),
            )
        )
        rows.append(
            ("LocalExecutor, all launched at once", executor_run(workdir, None, pinned=False))
        )
        print(f"{n} replicas of `true` per row, {os.cpu_count()} cores, load {_load()}")
        print(
            f"{'':58} {'jobs/s':>7} {'ratio':>6} {'launch p50':>10} {'p99':>7}"
            f" {'CPU/job: parent':>15} {'children':>9}"
        )
        baseline = 0.0
        for name, run in rows:
            row = measure(run, n)
            baseline = baseline or row.rate
            print(
                f"{name:58} {row.rate:7.0f} {row.rate / baseline:6.2f}"
                f" {row.launch_p50 * 1e6:8.0f}µs {row.launch_p99 * 1e6:5.0f}µs"
                f" {row.parent_cpu * 1e6:13.0f}µs {row.child_cpu * 1e6:7.0f}µs"
            )
        print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
