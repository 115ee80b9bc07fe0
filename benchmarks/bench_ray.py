"""AIOS on a Ray cluster: dispatch overhead, jobs per second across nodes, and fair share
against Ray alone.

Usage: python benchmarks/bench_ray.py [--runs R] [--launches N] [--latency N] [--jobs N]
       [--cpus C] [--sleep S] [--fair-runs R] [--skip dispatch,throughput,fairness] [--home-in DIR]

A Ray cluster of a head with no CPUs and three worker nodes (2 CPUs and 2 fake GPUs
each) is started on this machine with ``ray.cluster_utils.Cluster``. The three nodes
share this machine's cores: Ray's six CPU slots are two real cores.

1. Dispatch: ``launch()`` of the Ray executor alone against the local executor's (in
   alternating blocks), then N sequential one-CPU ``true`` jobs through a control plane
   (its own process, SQLite, DRF) on the local executor and on the Ray cluster: submit →
   running and submit → done as the control plane records them, and submit → done seen
   by the client; Ray alone: ``.remote()`` → result of the same command as a task.
2. Throughput: N one-CPU ``true`` jobs, one batch submission, first submit to last exit
   (server times) — local executor (2 cores), AIOS on the 3 Ray nodes, and Ray alone
   (the N commands as tasks with ``num_cpus=1`` on the same nodes); and the CPU per job
   of AIOS's own processes (control plane, node agents, the jobs they reap), which the
   machine's other load moves far less than jobs/s.
3. Fair share: three tenants with equal GPU quotas (2 of the 6) in one cohort, DRF; the
   heavy tenant floods first, the others follow; every job is ``sleep S`` on one GPU.
   The same jobs as Ray tasks (``num_gpus=1``) submitted in the same order and at the
   same offsets. Per tenant: its share of the GPU time in the contended window (from
   the last tenant's first submit to the first tenant's last finish) and its share
   ratio (GPU time received over its max-min fair entitlement, as the simulator
   computes it), with Jain's index of each.

Rounds alternate the runners so load swings hit each alike; the 1-minute load average
is printed per round (it includes the benchmark's own previous round).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

import ray_peer
from aios.client import Client
from aios.control.specs import JobView
from aios.executors import LaunchSpec, LocalExecutor
from bench_control import PlaneProcess
from ray_peer import GPUS, Fairness, Run, fairness, median_fairness

WAVES = ((0.0, "heavy", 18), (0.5, "b", 6), (1.0, "c", 9))
"""The fair-share workload: (offset in seconds, tenant, one-GPU jobs)."""


def load() -> float:
    return os.getloadavg()[0]


# -- 1. dispatch -----------------------------------------------------------------------
def launch_times(
    executor: Any, ended: threading.Event, node: str, workdir: Path, n: int, job_id: str
) -> tuple[list[float], list[float]]:
    """``launch()`` seconds and launch → exit seen seconds of ``n`` sequential ``true``
    (``ended`` is set by the executor's ``on_exit``)."""
    launches, rounds = [], []
    for replica in range(n):
        spec = LaunchSpec(
            job_id=job_id,
            attempt=1,
            replica=replica,
            command=["true"],
            workdir=workdir,
            stdout=workdir / f"{job_id}.{replica}.out",
            stderr=workdir / f"{job_id}.{replica}.err",
            checkpoint_dir=workdir / "checkpoint",
            cores=(0,),
            node=node,
        )
        started = time.perf_counter()
        executor.launch(spec)
        launches.append(time.perf_counter() - started)
        while not executor.poll():
            ended.wait(5)
            ended.clear()
        rounds.append(time.perf_counter() - started)
    return launches, rounds


def bench_launch(n: int, home: Path, block: int = 20) -> dict[str, tuple[float, float]]:
    """Medians of ``launch()`` and of launch → exit seen, ``n`` launches per executor in
    alternating blocks (so a swing of the machine's load hits both alike)."""
    from aios.cluster.executor import RayExecutor
    from aios.cluster.nodes import ray_nodes

    workdir = home / "launch" / "jobs" / "bench"
    (workdir / "checkpoint").mkdir(parents=True)
    ended = threading.Event()
    local = LocalExecutor(on_exit=ended.set)
    remote = RayExecutor(on_exit=ended.set, node_home=str(home / "launch" / "nodes"))
    worker = next(node for node in ray_nodes().values() if node.capacity.get("cpu"))
    remote.add_node(worker)
    runs = {"local": (local, "local"), "ray": (remote, worker.name)}
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in runs}
    try:
        for label, (executor, node) in runs.items():
            launch_times(executor, ended, node, workdir, 5, f"{label}-warm")
        for first in range(0, n, block):
            for label, (executor, node) in runs.items():
                launches, rounds = launch_times(
                    executor, ended, node, workdir, min(block, n - first), f"{label}-{first}"
                )
                times[label][0].extend(launches)
                times[label][1].extend(rounds)
    finally:
        local.close()
        remote.close()  # its pump must not take the exits of the control plane's jobs
    return {k: (median(launches), median(rounds)) for k, (launches, rounds) in times.items()}


def plane_latency(client: Client, n: int) -> tuple[list[float], list[float], list[float]]:
    running, done, seen = [], [], []
    for _ in range(n):
        sent = time.time()
        job = client.submit(["true"], cpus=1, memory="64M")
        ended = client.wait(job.id, timeout=60, poll=0.005)
        seen.append(time.time() - sent)
        assert ended.state == "succeeded", ended.message
        assert ended.started_at is not None and ended.finished_at is not None
        running.append(ended.started_at - ended.submitted_at)
        done.append(ended.finished_at - ended.submitted_at)
    return running, done, seen


# -- 2. throughput ---------------------------------------------------------------------
def plane_throughput(client: Client, n: int, cpus: float) -> float:
    jobs = client.submit_many([{"command": ["true"], "cpus": cpus, "memory": "64M"}] * n)
    ids = {job.id for job in jobs}
    for job_id in (min(ids), max(ids)):
        client.wait(job_id, timeout=600, poll=0.25)
    for job in client.jobs(state="running") + client.jobs(state="queued"):
        client.wait(job.id, timeout=600, poll=0.05)
    ended = [job for job in client.jobs(limit=10_000) if job.id in ids]
    assert len(ended) == n and all(job.state == "succeeded" for job in ended), "a job failed"
    first = min(job.submitted_at for job in ended)
    last = max(job.finished_at or 0.0 for job in ended)
    return n / (last - first)


def aios_cpu(plane: PlaneProcess) -> float:
    """CPU seconds so far of AIOS's own long-lived processes for ``plane`` and the jobs
    they reaped: the control plane and, on Ray, the node agents (Ray's raylets and GCS
    are not counted). The other plane's agents are counted too: idle, they add next to nothing."""
    processes = [psutil.Process(plane.process.pid)]
    if plane.ray:
        for process in psutil.Process().children(recursive=True):  # this run's cluster
            with contextlib.suppress(psutil.Error):
                if process.name().startswith("ray::NodeAgent"):
                    processes.append(process)
    total = 0.0
    for process in processes:
        t = process.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
    return total


# -- 3. fair share ---------------------------------------------------------------------
def aios_fair_share(home: Path, address: str, seconds: float) -> list[Run]:
    plane = PlaneProcess(home, ray=address)
    client = plane.client()
    try:
        for _, tenant, _ in WAVES:
            client.create_queue(tenant, quota={"gpu": 2}, cohort="gpus")
        start = time.time()
        ids: list[int] = []
        for offset, tenant, count in WAVES:
            time.sleep(max(0.0, start + offset - time.time()))
            spec = {
                "command": ["sleep", str(seconds)],
                "cpus": 1,
                "gpus": 1,
                "memory": "64M",
                "queue": tenant,
            }
            ids += [job.id for job in client.submit_many([spec] * count)]
        jobs: list[JobView] = [client.wait(job_id, timeout=300, poll=0.25) for job_id in ids]
    finally:
        client.close()
        plane.stop(keep_home=True)
    assert all(job.state == "succeeded" for job in jobs), "a fair-share job failed"
    return [
        (
            job.queue,
            job.submitted_at,
            [(a.started_at, a.finished_at or a.started_at) for a in job.attempts],
        )
        for job in jobs
    ]


def ray_fair_share(seconds: float) -> list[Run]:
    return [
        (run.tenant, run.submitted, [(run.started, run.finished)])
        for run in ray_peer.fair_share(WAVES, seconds)
    ]


def bench_fairness(address: str, root: Path, rounds: int, seconds: float) -> None:
    runners: dict[str, Callable[[int], list[Run]]] = {
        "aios": lambda r: aios_fair_share(root / f"fair-{r}", address, seconds),
        "ray": lambda r: ray_fair_share(seconds),
    }
    results: dict[str, list[Fairness]] = {label: [] for label in runners}
    rows = []
    for round_ in range(1, rounds + 1):
        for label, runner in runners.items():
            before = load()
            results[label].append(fairness(runner(round_)))
            rows.append(_fair_row(str(round_), label, f"{before:.2f}", results[label][-1]))
    for label, name in (("aios", "aios: drf, quotas 2+2+2"), ("ray", "ray alone (fifo-ish)")):
        rows.append(_fair_row("median", name, "", median_fairness(results[label])))
    tenants = [tenant for _, tenant, _ in WAVES]
    waves = ", ".join(f"{t} {n} at +{o:g}s" for o, t, n in WAVES)
    table(
        f"fair share: one-GPU `sleep {seconds:g}` jobs ({waves}), {GPUS} GPUs on 3 nodes",
        [
            "round",
            "scheduler",
            "load 1m",
            *[f"{t} share" for t in tenants],
            "jain",
            *[f"{t} ratio" for t in tenants],
            "jain",
            "window s",
            "makespan s",
            "preempted",
        ],
        rows,
    )


def _fair_row(round_: str, label: str, before: str, r: Fairness) -> list[str]:
    tenants = [tenant for _, tenant, _ in WAVES]
    return [
        round_,
        label,
        before,
        *[f"{r.window.get(t, 0.0):.2f}" for t in tenants],
        f"{r.window_jain:.3f}",
        *[f"{r.ratios.get(t, 0.0):.2f}" for t in tenants],
        f"{r.ratio_jain:.3f}",
        f"{r.window_s:.1f}",
        f"{r.makespan:.1f}",
        f"{r.preempted:.0f}",
    ]


# -- 1 and 2 together: rounds that alternate the runners -------------------------------
def bench_dispatch_and_throughput(
    address: str, root: Path, args: argparse.Namespace, skip: set[str]
) -> None:
    local, remote = PlaneProcess(root / "local"), PlaneProcess(root / "ray", ray=address)
    clients = {"local": local.client(), "ray": remote.client()}
    runners = ("local", "ray", "task")
    latency: dict[str, list[tuple[float, float, float]]] = {k: [] for k in runners}
    rates: dict[str, list[float]] = {k: [] for k in runners}
    cpus: dict[str, list[float]] = {k: [] for k in runners}
    rows: list[list[str]] = []
    try:
        for round_ in range(1, args.runs + 1):
            row = [str(round_), f"{load():.2f}"]
            if "dispatch" not in skip:
                for label in ("local", "ray"):
                    running, done, seen = plane_latency(clients[label], args.latency)
                    latency[label].append((median(running), median(done), median(seen)))
                task = median(ray_peer.dispatch_latency(args.latency))
                latency["task"].append((math.nan, math.nan, task))
                row += [ms(latency[k][-1][1]) for k in ("local", "ray")] + [ms(task)]
            if "throughput" not in skip:
                for label, plane in (("local", local), ("ray", remote)):
                    before = aios_cpu(plane)
                    rates[label].append(plane_throughput(clients[label], args.jobs, args.cpus))
                    cpus[label].append((aios_cpu(plane) - before) / args.jobs)
                rates["task"].append(ray_peer.throughput(args.jobs, args.cpus))
                cpus["task"].append(math.nan)
                row += [f"{rates[k][-1]:.0f}" for k in runners]
            rows.append(row)
    finally:
        for client in clients.values():
            client.close()
        local.stop(keep_home=True)
        remote.stop(keep_home=True)
    header = ["round", "load 1m"]
    if "dispatch" not in skip:
        header += ["local: submit → done ms", "ray: submit → done ms", "ray task ms"]
    if "throughput" not in skip:
        header += ["local jobs/s", "ray jobs/s", "ray tasks/s"]
    table("rounds (p50 of each round; jobs/s)", header, rows)
    if "dispatch" not in skip:
        med = {k: [median([r[i] for r in v]) for i in range(3)] for k, v in latency.items()}
        base = med["local"][1]
        table(
            f"dispatch of one `true` job, {args.latency} in sequence, medians of {args.runs}"
            " rounds' p50 (ms)",
            ("runner", "submit → running", "submit → done", "client: submit → done", "/ local"),
            [
                ("aios, local executor (baseline)", *map(ms, med["local"]), "1.00"),
                ("aios, ray executor", *map(ms, med["ray"]), f"{med['ray'][1] / base:.2f}"),
                ("ray task alone (.remote → result)", "", "", ms(med["task"][2]), ""),
            ],
        )
    if "throughput" not in skip:
        jobs_s = {k: median(v) for k, v in rates.items()}
        cpu = {k: median(v) for k, v in cpus.items()}
        table(
            f"{args.jobs} `true` jobs of {args.cpus:g} CPU, batch submit → last exit, medians of"
            f" {args.runs} rounds",
            ("runner", "jobs/s", "/ local aios", "/ ray alone", "aios CPU ms/job", "/ local"),
            [
                (
                    label,
                    f"{jobs_s[k]:.0f}",
                    f"{jobs_s[k] / jobs_s['local']:.2f}",
                    f"{jobs_s[k] / jobs_s['task']:.2f}",
                    ms(cpu[k]),
                    "" if math.isnan(cpu[k]) else f"{cpu[k] / cpu['local']:.2f}",
                )
                for label, k in (
                    ("aios, local executor, 2 cores (baseline)", "local"),
                    (f"aios on 3 ray nodes ({6 / args.cpus:g} slots)", "ray"),
                    (f"ray alone, tasks num_cpus={args.cpus:g}", "task"),
                )
            ],
        )


# -- the run -----------------------------------------------------------------------
def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = zip(row, widths, strict=True)
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(cells)))


def ms(seconds: float) -> str:
    return "" if math.isnan(seconds) else f"{seconds * 1e3:.1f}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def loads() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds of dispatch and throughput")
    parser.add_argument("--launches", type=int, default=200, help="launches per executor")
    parser.add_argument("--latency", type=int, default=30, help="sequential jobs per round")
    parser.add_argument("--jobs", type=int, default=500, help="jobs per throughput round")
    parser.add_argument("--cpus", type=float, default=1.0, help="cores per throughput job")
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds of one GPU job")
    parser.add_argument("--fair-runs", type=int, default=2, help="rounds of the fair share")
    parser.add_argument("--skip", default="", help="comma list of dispatch,throughput,fairness")
    parser.add_argument("--home-in", default=None, help="directory for the temporary homes")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    import ray

    began = time.monotonic()
    print(f"{os.cpu_count()} cores, load average {loads()}")
    cluster = ray_peer.start_cluster()
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="aios-bench-ray-", dir=args.home_in))
    try:
        print(
            f"Ray cluster up in {time.monotonic() - began:.1f} s: head 0 CPUs, 3 × (2 CPUs, 2 GPUs)"
        )
        if "dispatch" not in skip:
            launched = bench_launch(args.launches, root)
            table(
                f"executor alone: {args.launches} `true` in sequence, medians (ms)",
                ("executor", "launch()", "launch → exit seen", "launch / local"),
                [
                    (label, ms(lt), ms(rt), f"{lt / launched['local'][0]:.1f}")
                    for label, (lt, rt) in launched.items()
                ],
            )
        if not {"dispatch", "throughput"} <= skip:
            bench_dispatch_and_throughput(cluster.address, root, args, skip)
        if "fairness" not in skip:
            bench_fairness(cluster.address, root, args.fair_runs, args.sleep)
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nwhole benchmark: {time.monotonic() - began:.0f} s; load average now {loads()}")


if __name__ == "__main__":
    main()
