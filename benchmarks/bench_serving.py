"""Inference server throughput and latency against the model's own limit and Ray Serve.

Usage: python benchmarks/bench_serving.py [--model mlp|cnn] [--rows 1 --rows 128]
       [--seconds 3] [--runs 3] [--delay-ms 0] [--no-ray] [--gateway] [--compare-src DIR]
       python benchmarks/bench_serving.py --overload [--seconds 5] [--runs 3]
       [--compare-src DIR]

The models (``serving_models.py``): a scikit-learn MLP through skl2onnx (3 µs per row,
HTTP-bound) or a small CNN built with the onnx helper API (0.6 ms per row). A request
carries ``--rows`` digit rows in the tritonclient default format (binary tensors).

Contenders, at concurrency 1, 16 and 64 (closed loop, ``serving_load.py``):

- limit: raw onnxruntime called in-process, one thread, with the batches a perfect
  server would form at that concurrency (all ``c`` requests in one batch), back to back.
  No HTTP, no codec, no queue: what the model can do on one core.
- limit at aios's batch sizes: the same, with as many requests per batch as the batched
  server formed on average in the same run (closed loop, a server batches about ``c/2``:
  half the clients wait on the batch in flight) — the issue's "raw onnxruntime called
  in-process with the same batches". Printed after the table, as ratios.
- aios, dynamic batching: ``aios serve`` (``--max-batch-size`` 1,024 rows,
  ``--max-queue-delay-ms`` as given).
- aios, batching off: the same server, each request its own model call.
- Ray Serve, ``@serve.batch``: the peer, the same model, batch size and delay, in its own
  venv (``serving_ray.py``); ``--no-ray`` skips it.
- ``--compare-src DIR``: the batched server again, from another ``aios`` package (say
  the previous commit's, from ``git archive HEAD src | tar -x -C DIR``, with
  ``DIR/src``), to measure a change in the same run.
- ``--gateway``: one row through the control plane's gateway against the replica it
  forwards to (``serving_gateway.py``).
- ``--overload``: instead of the above, goodput (200s per second) of the MLP replica
  with ``aios serve``'s defaults at 512 wrk connections against 64, JSON and binary
  bodies (``serving_overload.py``).

Every aios server runs as a deployment's replica does, with a replica secret that
each request carries (``X-AIOS-Replica-Secret``): the check is part of what is measured
(a ``--compare-src`` package that predates it ignores both).

Fair on 2 cores: every server (all of Ray's processes too) and the limit run pinned to
CPU 0 with one onnxruntime thread; the load generator is pinned to CPU 1. ``--runs``
repeats every contender that many times, interleaved, and the table gives medians:
the machine is shared, so compare the ratios of one run, not absolute figures across
runs. "CPU ms/request" is the serving processes' own CPU time (from /proc), which the
other tenants of the machine do not inflate.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving_load import Figures, free_port, measure, pin, session_pids, unpin, v2_request
from serving_models import INPUT, MODELS, OUTPUT, BenchModel
from serving_ray import ROUTE, RayServe

SERVER_CPU = 0
CLIENT_CPU = 1
CONCURRENCY = (1, 16, 64)
MAX_BATCH_ROWS = 1024
SECRET = {"X-AIOS-Replica-Secret": "b3" * 32}
"""The header of the replica secret every aios server here is given."""
"""Rows per batch at most, for the servers and the limit alike: onnxruntime's rows/s on
the MLP peaks between 64 and 1,024 rows and falls past that (caches)."""
LIMIT = "limit: onnxruntime in-process"
SAME_BATCHES = "limit at aios's batch sizes"
BATCHED = "aios, dynamic batching"
RAY = "Ray Serve, @serve.batch"
Results = dict[str, dict[int, Figures]]


def batch_requests(rows: int, concurrency: int) -> int:
    """Requests in one full batch: all ``concurrency`` of them, up to the row cap."""
    return max(1, min(concurrency, MAX_BATCH_ROWS // rows))


def _limit_worker(name: str, path: str, rows: int, requests: int, seconds: float, out: Any) -> None:
    import onnxruntime as ort

    pin(SERVER_CPU)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    batch = MODELS[name].sample(rows * requests)
    warmup = time.perf_counter() + min(0.5, seconds)
    while time.perf_counter() < warmup:
        session.run(None, {INPUT: batch})
    calls, started, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        session.run(None, {INPUT: batch})
        calls += 1
    out.send((calls * requests / elapsed, (time.process_time() - cpu) / (calls * requests)))


def measure_limit(
    model: BenchModel, path: Path, rows: int, seconds: float, batches: dict[int, int] | None = None
) -> dict[int, Figures]:
    """Raw onnxruntime on CPU 0 at each concurrency, with full batches (all ``c``
    requests), or with ``batches[c]`` requests per batch (the batches a server formed)."""
    figures = {}
    context = multiprocessing.get_context("spawn")
    for concurrency in CONCURRENCY:
        requests = (batches or {}).get(concurrency) or batch_requests(rows, concurrency)
        receive, send = context.Pipe(duplex=False)
        args = (model.name, str(path), rows, requests, seconds, send)
        worker = context.Process(target=_limit_worker, args=args)
        worker.start()
        rate, cpu = receive.recv()
        worker.join()
        figures[concurrency] = Figures(rate, cpu_ms=1000 * cpu, mean_batch=requests)
    return figures


def start_server(
    model: BenchModel,
    path: Path,
    max_batch_rows: int,
    delay_ms: float,
    workdir: Path,
    source: Path | None = None,
    max_queue_size: int = 1024,
) -> tuple[subprocess.Popen[bytes], int]:
    """``aios serve`` pinned to CPU 0, one onnxruntime thread; the process and its port.
    ``source``: a directory holding another ``aios`` package to run instead of ours."""
    ready = workdir / f"ready-{time.monotonic_ns()}.json"
    command = [
        *("taskset", "-c", str(SERVER_CPU), sys.executable, "-m", "aios.serving"),
        *("--model", f"{model.name}=onnx:{path}", "--port", "0"),
        *("--ready-file", str(ready), "--threads", "1", "--max-queue-size", str(max_queue_size)),
        *("--max-batch-size", str(max_batch_rows), "--max-queue-delay-ms", str(delay_ms)),
    ]
    env = {**os.environ, "AIOS_REPLICA_SECRET": SECRET["X-AIOS-Replica-Secret"]}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"the server did not start: {' '.join(command)}")
        time.sleep(0.05)
    return server, int(json.loads(ready.read_text())["port"])


def measure_server(
    model: BenchModel,
    path: Path,
    rows: int,
    batching: bool,
    args: argparse.Namespace,
    source: Path | None = None,
) -> dict[int, Figures]:
    """``aios serve`` loaded at each concurrency from CPU 1."""
    max_batch = MAX_BATCH_ROWS if batching else 1
    server, port = start_server(model, path, max_batch, args.delay_ms, args.workdir, source)
    try:
        address, target = f"127.0.0.1:{port}", f"/v2/models/{model.name}/infer"
        request = v2_request(address, target, model.sample(rows), SECRET)
        figures = {}
        for concurrency in CONCURRENCY:
            before = _batch_totals(port)
            figures[concurrency] = measure(port, request, concurrency, args.seconds, [server.pid])
            after = _batch_totals(port)
            batches = after[1] - before[1]
            figures[concurrency].mean_batch = (after[0] - before[0]) / batches / rows
        return figures
    finally:
        server.terminate()
        server.wait(60)


def _batch_totals(port: int) -> tuple[float, float]:
    """Rows batched and batches run so far, from the server's /metrics."""
    import httpx

    totals = {"sum": 0.0, "count": 0.0}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", headers=SECRET).text.splitlines():
        for key in totals:
            if line.startswith(f"aios_inference_batch_size_{key}"):
                totals[key] = float(line.rsplit(" ", 1)[1])
    return totals["sum"], totals["count"]


def measure_ray(
    model: BenchModel, path: Path, rows: int, args: argparse.Namespace
) -> dict[int, Figures]:
    """Ray Serve (all its processes on CPU 0) loaded at each concurrency from CPU 1."""
    port = free_port()
    max_batch = batch_requests(rows, max(CONCURRENCY))
    with RayServe(path, port, max_batch, args.delay_ms, SERVER_CPU, args.workdir) as ray:
        request = v2_request(f"127.0.0.1:{port}", ROUTE, model.sample(rows), {})
        pids = session_pids(ray.session)
        return {c: measure(port, request, c, args.seconds, pids) for c in CONCURRENCY}


def check_with_tritonclient(model: BenchModel, path: Path, workdir: Path) -> None:
    """One request through the official client, so the benchmark serves what it says."""
    import onnxruntime as ort
    import tritonclient.http as triton

    server, port = start_server(model, path, MAX_BATCH_ROWS, 0.0, workdir)
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        features = model.sample(8)
        tensor = triton.InferInput(INPUT, list(features.shape), "FP32")
        tensor.set_data_from_numpy(features)
        # a copy: tritonclient adds its own headers to the dict it is given
        served = client.infer(model.name, [tensor], headers=dict(SECRET)).as_numpy(OUTPUT)
        client.close()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        expected = session.run([OUTPUT], {INPUT: features})[0]
        np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-6)
    finally:
        server.terminate()
        server.wait(60)


def median_figures(runs: list[Results]) -> Results:
    """Each cell's median over the runs."""
    merged: Results = {}
    for name in runs[0]:
        merged[name] = {}
        for c in CONCURRENCY:
            cells = [run[name][c] for run in runs]

            def mid(field: str, of: list[Figures] = cells) -> float:
                return statistics.median(float(getattr(f, field)) for f in of)

            merged[name][c] = Figures(
                mid("rate"), mid("p50"), mid("p99"), mid("cpu_ms"), mid("mean_batch")
            )
    return merged


def ratio(runs: list[Results], name: str, other: str, c: int) -> str:
    """The median over runs of ``name``'s rate over ``other``'s, run by run."""
    if other not in runs[0]:
        return ""
    return f"{statistics.median(r[name][c].rate / r[other][c].rate for r in runs):.2f}"


def table(title: str, runs: list[Results], baseline: str) -> str:
    """One markdown table of medians: each concurrency, each contender, the ratios."""
    merged = median_figures(runs)
    short = baseline.split(":", maxsplit=1)[0]
    lines = [
        f"## {title}",
        "",
        f"| c | contender | req/s | / {short} | / Ray | p50 ms | p99 ms "
        "| req/batch | CPU ms/req | limit CPU / CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCY:
        for name, figures in merged.items():
            f = figures[c]
            limit_cpu = merged.get(LIMIT, {}).get(c)
            cells = [
                str(c),
                name,
                f"{f.rate:,.0f}",
                ratio(runs, name, baseline, c),
                ratio(runs, name, RAY, c),
                f"{f.p50:.2f}" if f.p50 == f.p50 else "",
                f"{f.p99:.2f}" if f.p99 == f.p99 else "",
                f"{f.mean_batch:.1f}" if f.mean_batch == f.mean_batch else "",
                f"{f.cpu_ms:.3f}",
                f"{limit_cpu.cpu_ms / f.cpu_ms:.2f}" if limit_cpu and f.cpu_ms > 0 else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def one_run(model: BenchModel, path: Path, rows: int, args: argparse.Namespace) -> Results:
    """Every contender once, in turn."""
    results: Results = {LIMIT: measure_limit(model, path, rows, args.seconds)}
    pin(CLIENT_CPU)
    try:
        results[BATCHED] = measure_server(model, path, rows, True, args)
        results["aios, batching off"] = measure_server(model, path, rows, False, args)
        if args.compare_src is not None:
            name = f"aios from {args.compare_src}, dynamic batching"
            results[name] = measure_server(model, path, rows, True, args, args.compare_src)
        if not args.no_ray:
            results[RAY] = measure_ray(model, path, rows, args)
    finally:
        unpin()
    # The issue's own limit: onnxruntime with the batches the server really formed.
    formed = {c: max(1, round(f.mean_batch)) for c, f in results[BATCHED].items()}
    results[SAME_BATCHES] = measure_limit(model, path, rows, args.seconds, formed)
    return results


def same_batches(runs: list[Results]) -> str:
    """aios batched against onnxruntime with aios's own batch sizes, per concurrency:
    medians of the run-by-run ratios of req/s and of CPU per request."""
    lines = [f"aios, dynamic batching against the {SAME_BATCHES} (medians of run ratios):"]
    for c in CONCURRENCY:
        rate = statistics.median(r[BATCHED][c].rate / r[SAME_BATCHES][c].rate for r in runs)
        cpu = statistics.median(r[SAME_BATCHES][c].cpu_ms / r[BATCHED][c].cpu_ms for r in runs)
        batch = statistics.median(r[SAME_BATCHES][c].mean_batch for r in runs)
        lines.append(
            f"- c={c}: {rate:.2f} of its req/s, {cpu:.2f} of its CPU (batches of {batch:.0f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--rows", type=int, action="append", help="rows per request")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--runs", type=int, default=3, help="repeats; the table has medians")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="max queue delay")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Serve peer")
    parser.add_argument("--gateway", action="store_true", help="also one row via the gateway")
    parser.add_argument(
        "--overload", action="store_true", help="goodput at 512 connections against 64"
    )
    parser.add_argument(
        "--compare-src",
        type=Path,
        help="a directory with another aios package (e.g. from git archive) to run as well",
    )
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 CPUs: servers and load generator share one core")
    model = MODELS[args.model]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        args.workdir = Path(tmp)
        path = model.build(args.workdir)
        if args.overload:
            _overload(model, path, args)
            return
        check_with_tritonclient(model, path, args.workdir)
        for rows in args.rows or [1, 128]:
            runs = [one_run(model, path, rows, args) for _ in range(args.runs)]
            title = (
                f"{model.name}, {rows} row(s) per request ({rows * model.row_bytes:,} bytes of "
                f"FP32 in), medians of {args.runs} run(s)"
            )
            print(table(title, runs, LIMIT), end="\n\n", flush=True)
            print(same_batches(runs), end="\n\n", flush=True)
        if args.gateway:
            _gateway(model, path, args)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _overload(model: BenchModel, path: Path, args: argparse.Namespace) -> None:
    from serving_overload import OVERLOAD, SATURATION, overload_runs, table

    def replica(
        model: BenchModel, path: Path, workdir: Path, source: Path | None
    ) -> tuple[subprocess.Popen[bytes], int]:
        # aios serve's defaults: 64 rows per batch, 2 ms of delay, 256 requests queued
        return start_server(model, path, 64, 2.0, workdir, source, max_queue_size=256)

    rows = overload_runs(model, path, args, replica, SECRET)
    print(
        f"## {model.name}, 1 row per request: goodput at {OVERLOAD} connections against "
        f"{SATURATION}, medians of {args.runs} run(s)\n"
    )
    print(table(rows), end="\n\n")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _gateway(model: BenchModel, path: Path, args: argparse.Namespace) -> None:
    from serving_gateway import DIRECT, measure_gateway

    runs = [measure_gateway(model, path, 1, args, CONCURRENCY) for _ in range(args.runs)]
    title = f"{model.name}, 1 row per request: the gateway hop, medians of {args.runs} run(s)"
    print(table(title, runs, DIRECT), end="\n\n")


if __name__ == "__main__":
    main()
