"""Replay of the whole Philly trace (82,247 jobs) on 55 nodes × 8 GPUs, per policy.

Usage: python benchmarks/bench_replay.py [--policy fifo,las,drf,...] [--limit K]

Prints, per policy, the replay's wall time and its quality: mean JCT, Jain's index
across the 15 virtual clusters, utilization, preemptions. Jain's index is over each
virtual cluster's share ratio (GPU time received / GPU time its max-min fair share
entitled it to, see aios.simulator.fairness); the index over mean slowdowns is printed
beside it. The baseline is fifo, replayed
in the same run: mean JCT of each policy against fifo's, and Jain's index against
fifo's. For scale: Tiresias (NSDI 2019) reports mean JCT up to 5.5× better than a
FIFO-style YARN scheduler on a Philly-like workload.
"""

from __future__ import annotations

import argparse
import time

from aios.simulator import ClusterSpec, bundled_trace_path, load_trace, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="fifo,fifo+backfill,priority,sjf,las,drf")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--nodes", type=int, default=55)
    args = parser.parse_args()

    started = time.perf_counter()
    trace = load_trace(bundled_trace_path(), limit=args.limit)
    print(
        f"loaded {len(trace):,} jobs in {time.perf_counter() - started:.2f} s; "
        f"{args.nodes} nodes x 8 GPUs\n"
    )
    spec = ClusterSpec(nodes=args.nodes, gpus_per_node=8)
    policies = args.policy.split(",")
    if "fifo" not in policies:
        policies.insert(0, "fifo")
    results = {p: simulate(trace, spec, p) for p in policies}
    fifo = results["fifo"].metrics

    print(
        "| policy | replay s | cycles | mean JCT h | p99 JCT h | mean wait h | util % | "
        "Jain | slowdown Jain | preemptions | fifo JCT / JCT | Jain / fifo Jain |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        m = result.metrics
        print(
            f"| {name} | {result.seconds:.1f} | {result.cycles:,} | {m.mean_jct / 3600:.2f} | "
            f"{m.p99_jct / 3600:.1f} | {m.mean_queueing_delay / 3600:.2f} | "
            f"{100 * m.gpu_utilization:.1f} | {m.jain_index:.3f} | {m.slowdown_jain:.3f} | "
            f"{m.preemptions:,} | "
            f"{fifo.mean_jct / m.mean_jct:.2f}x | {m.jain_index / fifo.jain_index:.2f}x |"
        )


if __name__ == "__main__":
    main()
