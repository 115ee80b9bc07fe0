"""The control plane end to end: submit-to-running latency, jobs per second, and the
cost of a long history.

Usage: python benchmarks/bench_control.py [--latency N] [--jobs N] [--runs R] [--history N]
       [--home-in DIR] [--skip …]

1. Latency: N one-CPU no-op jobs, one at a time on an idle control plane; submit-to-
   running as the control plane records it (``started_at - submitted_at``) and as the
   client sees it (POST sent → ``running`` or later observed), p50 and p99.
2. Throughput: N one-CPU ``true`` jobs submitted and run to completion (first submit to
   last exit, as the control plane records them), beside the physical limit measured in
   the same run — fork/exec of the same command with the same concurrency (one per
   core) — and, when they are installed, Ray (tasks with ``num_cpus=1``) and Slurm
   (``sbatch --wrap true``). ``--runs R`` alternates R rounds of fork/exec and aios and
   prints each round's load average and the medians.
3. History: a control plane whose database holds N finished jobs: its resident memory
   after start, and the latency of ``aios ps`` and ``aios ps --all`` (CLI processes).

Each control plane gets a fresh ``$AIOS_HOME`` in ``--home-in`` (default: the system's
temporary directory). Where that is matters: every job creates five inodes (its
directory, its checkpoint directory, two logs, its exit file), and ext4 without a
journal, as on the reference VM, skips each inode freed in the last seconds while it
allocates one — in a /tmp where test suites come and go, that can be a millisecond of
kernel time per file. So the rounds' homes are removed only after the last round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from sqlalchemy import insert

from aios.client import Client

CORES = len(os.sched_getaffinity(0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


class PlaneProcess:
    """A control plane in its own process, as ``aios up`` runs it, so that the load
    generator (this process) does not share its interpreter lock; on the local
    executor or, given ``ray``, attached to that Ray cluster."""

    def __init__(
        self, home: Path, tick: float = 1.0, ray: str | None = None, sandbox: str = "auto"
    ) -> None:
        self.home = home
        self.ray = ray
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = (
            f"home=Path({str(home)!r}), port={self.port}, tick={tick}, ray={ray!r}, "
            f"sandbox={sandbox!r}"
        )
        code = (
            "from pathlib import Path; from aios.control import ControlPlane, Settings;"
            f"ControlPlane(Settings({settings})).serve()"
        )
        self.process = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.monotonic() + 120  # attaching to Ray takes longer
        while True:
            try:
                httpx.get(f"{self.url}/healthz")
                break
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the control plane did not start") from None
                time.sleep(0.05)

    def client(self) -> Client:
        return Client(self.url, token=(self.home / "admin.token").read_text().strip())

    def stop(self, keep_home: bool = False) -> None:
        self.process.terminate()
        self.process.wait(30)
        if not keep_home:
            shutil.rmtree(self.home, ignore_errors=True)


def new_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="aios-bench-"))


def start(home: Path, sandbox: str = "auto") -> tuple[PlaneProcess, Client]:
    plane = PlaneProcess(home, sandbox=sandbox)
    return plane, plane.client()


def latencies(n: int, sandbox: str = "auto") -> tuple[list[float], list[float]]:
    """Submit-to-running of ``n`` no-op jobs one at a time: as the control plane
    recorded it, and as the client saw it (seconds)."""
    home = new_home()
    plane, client = start(home, sandbox)
    server: list[float] = []
    seen: list[float] = []
    try:
        for _ in range(n):
            sent = time.time()
            job = client.submit(["true"], cpus=1, memory="64M")
            while job.started_at is None:
                job = client.get(job.id)
            seen.append(time.time() - sent)
            done = client.wait(job.id, poll=0.002)
            assert done.started_at is not None
            server.append(done.started_at - done.submitted_at)
    finally:
        client.close()
        plane.stop()
    return server, seen


def bench_latency(n: int) -> None:
    server, seen = latencies(n)
    print(f"\nsubmit-to-running over {n} jobs, idle control plane (ms)")
    print(f"{'measured at':<28}{'p50':>8}{'p99':>8}")
    for label, values in (("control plane (recorded)", server), ("client (POST → running)", seen)):
        p50, p99 = percentile(values, 0.5) * 1e3, percentile(values, 0.99) * 1e3
        print(f"{label:<28}{p50:>8.1f}{p99:>8.1f}")


def fork_exec(n: int, concurrency: int) -> float:
    started = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    for _ in range(n):
        if len(running) >= concurrency:
            running.pop(0).wait()
        running.append(subprocess.Popen(["true"]))
    for process in running:
        process.wait()
    return n / (time.perf_counter() - started)


def aios_throughput(n: int, sandbox: str = "auto") -> tuple[float, Path]:
    """Jobs per second, and the home left behind (removing it at once would make the
    next round's files slower to create: see the module's docstring)."""
    home = new_home()
    plane, client = start(home, sandbox)
    try:
        # One request for all, as a Slurm job array would be submitted.
        jobs = client.submit_many([{"command": ["true"], "cpus": 1, "memory": "64M"}] * n)
        ids = [job.id for job in jobs]
        # Poll one job at a time, seldom (a listing of every job would load the server
        # more than the jobs do, and each poll costs it a few ms of CPU); the rate comes
        # from the times the server recorded, so polling sooner would not change it.
        # FIFO order means the last ends about last (two launches may swap places), so
        # the few still running after it are waited for too.
        for job_id in (ids[0], ids[-1]):
            client.wait(job_id, timeout=600, poll=0.25)
        for job in client.jobs(state="running") + client.jobs(state="queued"):
            client.wait(job.id, timeout=600, poll=0.05)
        ended = client.jobs(limit=n + 1)
        assert sum(job.state == "succeeded" for job in ended) == n, "not every job succeeded"
        first = client.get(ids[0])
        last = max(ended, key=lambda j: j.finished_at or 0)
        assert last.finished_at is not None
        return n / (last.finished_at - first.submitted_at), home
    finally:
        client.close()
        plane.stop(keep_home=True)


def ray_throughput(n: int) -> float | None:
    try:
        import ray
    except ImportError:
        return None
    ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False)
    try:

        def run_true() -> int:
            return subprocess.call(["true"])

        noop = ray.remote(num_cpus=1)(run_true)

        ray.get([noop.remote() for _ in range(10)])
        started = time.perf_counter()
        ray.get([noop.remote() for _ in range(n)])
        return n / (time.perf_counter() - started)
    finally:
        ray.shutdown()


def slurm_throughput(n: int) -> float | None:
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return None
    probe = subprocess.run(["squeue", "-h"], capture_output=True, check=False)
    if probe.returncode != 0:
        return None
    started = time.perf_counter()
    for _ in range(n):
        subprocess.run(
            ["sbatch", "-Q", "-c", "1", "--wrap", "true", "-o", "/dev/null"],
            check=True,
            capture_output=True,
        )
    while subprocess.run(["squeue", "-h"], capture_output=True, check=True).stdout.strip():
        time.sleep(0.05)
    return n / (time.perf_counter() - started)


def bench_throughput(n: int, runs: int) -> None:
    limits, rates, homes = [], [], []
    print(f"\n{n} one-CPU no-op jobs to completion on {CORES} cores (jobs/s)")
    print(f"{'round':<8}{'load avg (1 min)':>18}{'fork/exec':>12}{'aios':>8}{'ratio':>8}")
    for round_ in range(1, runs + 1):
        load = os.getloadavg()[0]
        limits.append(fork_exec(n, CORES))
        rate, home = aios_throughput(n)
        rates.append(rate)
        homes.append(home)
        ratio = rates[-1] / limits[-1]
        print(f"{round_:<8}{load:>18.2f}{limits[-1]:>12.0f}{rates[-1]:>8.0f}{ratio:>8.2f}")
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)
    limit = statistics.median(limits)
    rows: list[tuple[str, float | None]] = [
        ("fork/exec, one per core (limit)", limit),
        ("aios (batch submit → run → exit)", statistics.median(rates)),
        ("ray tasks (num_cpus=1)", ray_throughput(n)),
        ("slurm (sbatch --wrap true)", slurm_throughput(n)),
    ]
    print(f"\nmedians of {runs} round(s); home in {tempfile.gettempdir()}")
    print(f"{'runner':<38}{'jobs/s':>10}{'vs limit':>10}")
    for label, value in rows:
        if value is None:
            print(f"{label:<38}{'not installed':>20}")
        else:
            print(f"{label:<38}{value:>10.0f}{value / limit:>10.2f}")


def bench_history(n: int) -> None:
    from aios.store import Database, JobRow, sqlite_url

    home = new_home()
    db = Database(sqlite_url(home / "aios.db"))
    now = time.time()
    with db.transaction() as session:
        session.execute(
            insert(JobRow),
            [
                {
                    "name": f"job{i}",
                    "owner": "admin",
                    "queue": "default",
                    "state": "succeeded",
                    "kind": "batch",
                    "command": ["true"],
                    "shell": False,
                    "env": {},
                    "cpu": 1000,
                    "memory": 1 << 26,
                    "gpus": 0,
                    "replicas": 1,
                    "priority": 0,
                    "preemptible": True,
                    "dependencies": [],
                    "grace": 30.0,
                    "max_retries": 0,
                    "retries": 0,
                    "retry_backoff": 1.0,
                    "submitted_at": now - n + i,
                    "queued_at": now - n + i,
                    "started_at": now - n + i,
                    "finished_at": now - n + i + 0.5,
                    "attained_service": 0.5,
                    "attempts": 1,
                    "exit_code": 0,
                    "reason": "succeeded",
                    "message": "succeeded",
                }
                for i in range(n)
            ],
        )
    db.close()
    plane = PlaneProcess(home)
    url = plane.url
    try:
        env = os.environ | {"AIOS_URL": url, "AIOS_HOME": str(home)}
        aios = str(Path(sys.executable).with_name("aios"))
        timings = {}
        for label, args in (("aios ps", ["ps"]), ("aios ps --all", ["ps", "--all"])):
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                subprocess.run([aios, *args], env=env, check=True, capture_output=True)
                runs.append(time.perf_counter() - started)
            timings[label] = statistics.median(runs)
        rss = psutil.Process(plane.process.pid).memory_info().rss
    finally:
        plane.stop()
    print(f"\ncontrol plane with {n:,} finished jobs in its history")
    print(f"resident memory of the control plane: {rss / 2**20:.0f} MiB")
    for label, seconds in timings.items():
        print(f"{label:<16} median {seconds * 1e3:.0f} ms (whole CLI process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1, help="rounds of the throughput test")
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--skip", default="", help="comma list of latency,throughput,history")
    parser.add_argument("--home-in", default=None, help="directory for the temporary homes")
    args = parser.parse_args()
    if args.home_in:
        tempfile.tempdir = args.home_in
    skip = set(args.skip.split(","))
    if "latency" not in skip:
        bench_latency(args.latency)
    if "throughput" not in skip:
        bench_throughput(args.jobs, args.runs)
    if "history" not in skip:
        bench_history(args.history)


if __name__ == "__main__":
    main()
