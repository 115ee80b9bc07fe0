"""Scheduling-cycle throughput: placements per second in one full cycle.

Usage: python benchmarks/bench_cycle.py [--quick] [--policy fifo,las,drf]

The headline: 10,000 pending jobs on 1,000 nodes × 8 GPUs, one cycle, per policy.
Baseline, measured in the same run on the same jobs: a bare first-fit loop with no
framework (no plugins, no quota, no decisions objects) over the same bucket index —
about the least work any Python scheduler can do to place these jobs. The ratio says
what the framework costs on top of it. Then a scaling table over 1k/10k/100k jobs and
100/1,000/10,000 nodes. Timings are medians of several runs; the machine is shared.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from aios.resources import Node, Resources
from aios.scheduler import ClusterState, Job, cycle, make_policy

GPU_SIZES = (1, 1, 1, 1, 2, 4, 8)


def workload(n_jobs: int, seed: int = 1) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for i in range(n_jobs):
        gpus = rng.choice(GPU_SIZES)
        request = Resources(cpu=4000 * gpus, memory=gpus * 32 * 2**30, gpus=gpus)
        queue = f"team-{i % 8}"
        jobs.append(Job(f"j{i}", request, queue=queue, submit_time=float(i), priority=i % 3))
    return jobs


def cluster(n_nodes: int, jobs: list[Job], spec: str) -> ClusterState:
    policy = make_policy(spec)
    nodes = [
        Node.build(f"n{i:05d}", cpus=64, memory="512G", gpus=8, gpu_kind="A100")
        for i in range(n_nodes)
    ]
    state = ClusterState(nodes, order_key=policy.order_key)
    from aios.scheduler import Queue

    for team in range(8):
        state.set_queue(Queue(f"team-{team}", nominal={"gpu": n_nodes}, cohort="all"))
    for job in jobs:
        state.submit(job)
    return state


def bare_first_fit(n_nodes: int, jobs: list[Job]) -> int:
    """Places jobs in order on the fullest node with room, using free-GPU buckets."""
    free_gpus = [8] * n_nodes
    free_cores = [64] * n_nodes
    buckets: list[dict[int, None]] = [{} for _ in range(9)]
    for node in range(n_nodes):
        buckets[8][node] = None
    placed = 0
    for job in sorted(jobs, key=lambda j: j.submit_time):
        need, cores = job.request.gpus, job.request.cpu // 1000
        chosen = -1
        for level in range(need, 9):
            for node in buckets[level]:
                if free_cores[node] >= cores:
                    chosen = node
                    break
            if chosen >= 0:
                break
        if chosen < 0:
            break  # strict order, like fifo
        del buckets[free_gpus[chosen]][chosen]
        free_gpus[chosen] -= need
        free_cores[chosen] -= cores
        buckets[free_gpus[chosen]][chosen] = None
        placed += 1
    return placed


def median_time(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    times, placed = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        placed = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), placed


def measure(spec: str, n_jobs: int, n_nodes: int, repeats: int) -> tuple[float, int]:
    jobs = workload(n_jobs)
    policy = make_policy(spec)
    state = cluster(n_nodes, jobs, spec)
    return median_time(lambda: len(cycle(state, float(n_jobs), policy).binds), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="fifo,fifo+backfill,priority,sjf,las,drf")
    parser.add_argument("--quick", action="store_true", help="skip the 100k-job/10k-node rows")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print("## One cycle, 10,000 pending jobs on 1,000 nodes x 8 GPUs\n")
    jobs = workload(10_000)
    bare, bare_placed = median_time(lambda: bare_first_fit(1000, jobs), args.repeats)
    print(
        f"baseline bare first-fit loop: {bare_placed} placed in {bare * 1000:.1f} ms "
        f"= {bare_placed / bare:,.0f} placements/s\n"
    )
    print("| policy | placed | cycle ms | placements/s | bare loop / policy time |")
    print("|---|---:|---:|---:|---:|")
    for spec in args.policy.split(","):
        seconds, placed = measure(spec, 10_000, 1000, args.repeats)
        print(
            f"| {spec} | {placed} | {seconds * 1000:.1f} | {placed / seconds:,.0f} | "
            f"{bare / seconds:.2f} |"
        )

    print("\n## How one fifo cycle grows (ms, placements in brackets)\n")
    sizes_jobs = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    sizes_nodes = [100, 1_000] if args.quick else [100, 1_000, 10_000]
    print("| pending jobs | " + " | ".join(f"{n:,} nodes" for n in sizes_nodes) + " |")
    print("|---:|" + "---:|" * len(sizes_nodes))
    for n_jobs in sizes_jobs:
        cells = []
        for n_nodes in sizes_nodes:
            seconds, placed = measure("fifo", n_jobs, n_nodes, max(args.repeats // 2, 1))
            cells.append(f"{seconds * 1000:.0f} ({placed:,}; {placed / seconds:,.0f}/s)")
        print(f"| {n_jobs:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
