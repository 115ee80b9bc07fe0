"""What the sandbox costs: a job's start, submit-to-running, and jobs per second, with
the sandbox on against off in the same run.

Usage: python benchmarks/bench_sandbox.py [--starts N] [--latency N] [--jobs N] [--runs R]

1. Start cost: N runs of ``true`` one after another, as a bare fork/exec (the limit) and
   in the sandbox a job gets (``unshare`` + bubblewrap, built by
   :class:`aios.executors.sandbox.Sandbox` exactly as the executor builds it, for the
   uid a root control plane gives a tenant): wall time per run, median and p99, and the
   CPU time the children used per run.
2. Submit-to-running: N one-CPU no-op jobs one at a time on an idle control plane, the
   sandbox on and off, as the control plane records it (p50, p99).
3. The chain piece by piece: what each namespace, mount and process of the sandbox adds,
   in CPU of the whole machine per run (a PID namespace's teardown runs in kernel
   threads, where no child's usage shows it).
4. Throughput: N one-CPU ``true`` jobs submitted at once and run to completion, the
   sandbox off then on, R rounds alternating, beside fork/exec with one per core; medians
   and the ratio on/off (the issue's bound: at most 25 % lost).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from aios.executors.base import LaunchSpec, SandboxSpec
from aios.executors.sandbox import Sandbox
from bench_control import CORES, aios_throughput, fork_exec, latencies, percentile


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_start(n: int) -> None:
    sandbox = Sandbox.detect()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"aios-bench-start-{os.getpid()}"
    workdir.mkdir()
    spec = LaunchSpec(
        job_id="bench",
        attempt=1,
        replica=0,
        command=["true"],
        workdir=workdir,
        stdout=Path(os.devnull),
        stderr=Path(os.devnull),
        checkpoint_dir=workdir,
        sandbox=SandboxSpec(uid=200_000 if os.geteuid() == 0 else None),
    )
    if os.geteuid() == 0:
        os.chown(workdir, 200_000, 200_000)
        workdir.chmod(0o711)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir)}
    rows = []
    try:
        for label, sandboxed in (("fork/exec true (limit)", False), ("sandboxed true", True)):
            walls = []
            cpu_before = _children_cpu()
            for _ in range(n):
                started = time.perf_counter()
                if sandboxed:
                    with sandbox.argument_fds(spec, env) as fds:
                        subprocess.run(
                            [*sandbox.prefix(spec, fds), "true"], pass_fds=fds, check=True
                        )
                else:
                    subprocess.run(["true"], check=True)
                walls.append(time.perf_counter() - started)
            cpu = (_children_cpu() - cpu_before) / n
            rows.append((label, statistics.median(walls), percentile(walls, 0.99), cpu))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nstart cost over {n} runs, one at a time (ms)")
    print(f"{'what':<26}{'p50':>8}{'p99':>8}{'CPU':>8}{'p50 vs limit':>14}")
    base = rows[0][1]
    for label, p50, p99, cpu in rows:
        print(f"{label:<26}{p50 * 1e3:>8.2f}{p99 * 1e3:>8.2f}{cpu * 1e3:>8.2f}{p50 / base:>14.1f}")


def _machine_cpu() -> float:
    """Seconds of CPU the whole machine has spent (every process and the kernel's own
    threads: a namespace's teardown runs partly there, where no child's usage shows)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def bench_components(n: int) -> None:
    """What each piece of the chain costs, added one at a time (machine CPU per run, so
    that kernel work outside the children counts)."""
    bwrap = ["bwrap", "--ro-bind", "/", "/"]
    setpriv = ["setpriv", "--reuid=200000", "--regid=200000", "--clear-groups"]
    setpriv += ["--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
    pieces = [
        ("fork/exec true", ["true"]),
        ("bwrap, host root ro", bwrap),
        ("+ PID namespace", [*bwrap, "--unshare-pid"]),
        ("+ IPC, UTS", [*bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts"]),
    ]
    full = [*pieces[-1][1], "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    pieces.append(("+ /dev, /proc, /tmp", full))
    unshare = ["unshare", "--pid", "--fork", "--kill-child", "--"]
    pieces.append(("+ unshare in front", [*unshare, *full]))
    if os.geteuid() == 0:
        pieces.append(("+ setpriv (as root)", [*unshare, *full, *setpriv]))
    print(f"\nthe chain piece by piece, {n} runs each (ms of machine CPU per run)")
    print(f"{'what':<26}{'wall p50':>10}{'CPU':>8}{'added':>8}")
    previous = None
    for label, argv in pieces:
        walls = []
        before = _machine_cpu()
        for _ in range(n):
            started = time.perf_counter()
            subprocess.run([*argv, "true"] if argv != ["true"] else argv, check=True)
            walls.append(time.perf_counter() - started)
        cpu = (_machine_cpu() - before) / n
        added = "" if previous is None else f"{(cpu - previous) * 1e3:>8.2f}"
        print(f"{label:<26}{statistics.median(walls) * 1e3:>10.2f}{cpu * 1e3:>8.2f}{added}")
        previous = cpu


def bench_latency(n: int) -> None:
    print(f"\nsubmit-to-running over {n} jobs, idle control plane, recorded (ms)")
    print(f"{'sandbox':<10}{'p50':>8}{'p99':>8}")
    for sandbox in ("none", "bwrap"):
        server, _ = latencies(n, sandbox)
        p50, p99 = percentile(server, 0.5) * 1e3, percentile(server, 0.99) * 1e3
        print(f"{sandbox:<10}{p50:>8.1f}{p99:>8.1f}")


def bench_throughput(n: int, runs: int) -> None:
    print(f"\n{n} one-CPU no-op jobs to completion on {CORES} cores (jobs/s)")
    print(f"{'round':<7}{'load':>6}{'fork/exec':>11}{'off':>7}{'on':>7}{'on/off':>8}")
    limits: list[float] = []
    off: list[float] = []
    on: list[float] = []
    homes: list[Path] = []
    cpu_off: list[float] = []
    cpu_on: list[float] = []
    for round_ in range(1, runs + 1):
        load = os.getloadavg()[0]
        limits.append(fork_exec(n, CORES))
        for rates, cpus, sandbox in ((off, cpu_off, "none"), (on, cpu_on, "bwrap")):
            before = _machine_cpu()
            rate, home = aios_throughput(n, sandbox)
            cpus.append((_machine_cpu() - before) / n)
            rates.append(rate)
            homes.append(home)
        print(
            f"{round_:<7}{load:>6.2f}{limits[-1]:>11.0f}{off[-1]:>7.0f}{on[-1]:>7.0f}"
            f"{on[-1] / off[-1]:>8.2f}"
        )
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)
    median_off, median_on = statistics.median(off), statistics.median(on)
    print(
        f"medians: fork/exec {statistics.median(limits):.0f}, sandbox off {median_off:.0f}, "
        f"on {median_on:.0f} jobs/s; on/off {median_on / median_off:.2f} "
        f"(cost {100 * (1 - median_on / median_off):.0f} %)"
    )
    print(
        f"machine CPU per job (whole run, control plane included): sandbox off "
        f"{statistics.median(cpu_off) * 1e3:.1f} ms, on {statistics.median(cpu_on) * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=300)
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--skip", default="", help="comma list of start,components,latency,throughput"
    )
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    if "start" not in skip:
        bench_start(args.starts)
    if "components" not in skip:
        bench_components(args.starts)
    if "latency" not in skip:
        bench_latency(args.latency)
    if "throughput" not in skip:
        bench_throughput(args.jobs, args.runs)


if __name__ == "__main__":
    main()
