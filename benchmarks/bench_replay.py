"""Replays of cluster traces per policy, with preemption costs on, against the bound.

Usage: python benchmarks/bench_replay.py [--trace philly|philly-second-half|synthetic]
       [--policy fifo,sjf,las,drf,learned] [--limit K] [--restore 60s]
       [--checkpoint-every 30m] [--jobs N] [--seed S --tenants T --kinds K --sigma X
       --load L]

Traces: the whole Philly trace (82,247 jobs) on 55 nodes × 8 GPUs; its second half
with the learning policy's history taken from the first half only (the other policies
do not learn); the synthetic trace the tests generate (exponential arrivals, log-normal
job kinds, gangs up to 128 GPUs; ``--jobs`` of them, 20,000 by default, and the other
options of :class:`SyntheticShape` to draw another shape).

Every preemption costs a restore and the work since the last checkpoint (see
docs/preemption-costs.md). The clairvoyant bound, oracle-srtf, is replayed in the same
run and each policy's mean JCT is printed as a multiple of it. The baseline is the best
of today's policies (fifo, sjf, las, drf: the lowest mean JCT among those that ran),
replayed in the same run; ``learned`` is printed against it. Jain's index is over the
tenants' share ratios (aios.simulator.fairness).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from aios.cli.simulate import parse_cost
from aios.simulator import (
    ClusterSpec,
    SimulationResult,
    TraceJob,
    bundled_trace_path,
    load_trace,
    simulate,
)
from aios.simulator.synthetic import SyntheticShape, synthetic_trace

TODAY = ("fifo", "sjf", "las", "drf")
"""The policies AIOS shipped before the bound and the learning policy."""


def traces(
    name: str, limit: int | None, shape: SyntheticShape
) -> tuple[list[TraceJob], list[TraceJob]]:
    """The trace to replay and the history the learning policy starts from."""
    if name == "synthetic":
        return synthetic_trace(shape), []
    trace = load_trace(bundled_trace_path(), limit=limit)
    if name == "philly":
        return trace, []
    if name == "philly-second-half":
        half = len(trace) // 2
        first, second = trace[:half], trace[half:]
        origin = second[0].submit
        return [replace(job, submit=job.submit - origin) for job in second], first
    raise SystemExit(f"unknown trace {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default="philly")
    parser.add_argument("--policy", default="fifo,sjf,las,drf,learned")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0, help="synthetic: the generator's seed")
    parser.add_argument("--tenants", type=int, default=8, help="synthetic: tenants")
    parser.add_argument("--kinds", type=int, default=6, help="synthetic: job kinds per tenant")
    parser.add_argument("--sigma", type=float, default=1.2, help="synthetic: duration spread")
    parser.add_argument("--load", type=float, default=1.3, help="synthetic: work offered")
    parser.add_argument("--nodes", type=int, default=55)
    parser.add_argument("--restore", default="60s")
    parser.add_argument("--checkpoint-every", default="30m")
    args = parser.parse_args()

    cost = parse_cost(args.restore, args.checkpoint_every)
    started = time.perf_counter()
    shape = SyntheticShape(
        jobs=args.jobs,
        tenants=args.tenants,
        kinds=args.kinds,
        sigma=args.sigma,
        load=args.load,
        seed=args.seed,
    )
    trace, history = traces(args.trace, args.limit, shape)
    print(
        f"{args.trace}: {len(trace):,} jobs (history {len(history):,}) loaded in "
        f"{time.perf_counter() - started:.2f} s; {args.nodes} nodes x 8 GPUs; restore "
        f"{cost.restore:.0f} s, checkpoint every {cost.checkpoint_every or 0:.0f} s\n"
    )
    spec = ClusterSpec(nodes=args.nodes, gpus_per_node=8)
    policies = [p for p in args.policy.split(",") if p] + ["oracle-srtf"]
    results: dict[str, SimulationResult] = {}
    for name in policies:
        results[name] = simulate(trace, spec, name, cost=cost, history=history)
        print(f"replayed {name} in {results[name].seconds:.1f} s", flush=True)
    bound = results["oracle-srtf"].metrics.mean_jct
    today = [results[p] for p in TODAY if p in results]
    best = min(today, key=lambda r: r.metrics.mean_jct) if today else None

    print(
        "\n| policy | replay s | mean JCT h | median JCT h | p99 JCT h | x bound | "
        "preemptions | GPU-h lost | util % | Jain | best today / JCT |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        m = result.metrics
        versus = f"{best.metrics.mean_jct / m.mean_jct:.2f}x" if best and m.mean_jct else ""
        print(
            f"| {name} | {result.seconds:.1f} | {m.mean_jct / 3600:.2f} | "
            f"{m.median_jct / 3600:.2f} | {m.p99_jct / 3600:.1f} | {m.mean_jct / bound:.2f} | "
            f"{m.preemptions:,} | {m.lost_gpu_seconds / 3600:,.0f} | "
            f"{100 * m.gpu_utilization:.1f} | {m.jain_index:.3f} | {versus} |"
        )
    if best is not None:
        print(f"\nbest of today's policies: {best.metrics.policy}")


if __name__ == "__main__":
    main()
