"""Inference server throughput and latency against the model's own limit.

Usage: python benchmarks/bench_serving.py [--rows 1 --rows 128] [--seconds 4]

The model: a scikit-learn MLP 64→256→256→10 fitted on the bundled digits, converted
with skl2onnx, served by onnxruntime. A request carries ``--rows`` digit rows in the
tritonclient default format (binary tensors both ways, body built by tritonclient).

Rows, at concurrency 1, 16 and 64 (closed loop: each client sends its next request
when the previous answer arrives):

- limit: raw onnxruntime called in-process, one thread, with the batches a perfect
  server would form at that concurrency (all ``c`` requests in one batch), back to back.
  No HTTP, no codec, no queue: what the model can do on one core.
- batched: ``aios serve`` with dynamic batching (``--max-batch-size`` 64 requests,
  ``--max-queue-delay-ms`` as given), the client measuring each request's latency.
- unbatched: the same server with batching off, each request its own model call.
- Ray Serve with ``@serve.batch`` as the peer, only when ``ray[serve]`` imports here.

What is fair on 2 cores: the server process (and the limit's process) is pinned to
CPU 0 with one onnxruntime thread; the load generator is pinned to CPU 1, so neither
steals the other's core and the limit gets exactly the core the server gets. The load
generator sends pre-built request bytes over keep-alive HTTP/1.1 connections with
asyncio streams and reads only the status line, headers and body length: a few tens of
microseconds per request, far less than the server spends, so it does not set the pace.
The machine is shared: compare the ratios of one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SERVER_CPU = 0
CLIENT_CPU = 1
CONCURRENCY = (1, 16, 64)
MAX_BATCH_ROWS = 1024
"""Rows per batch at most, for the server and the limit alike: onnxruntime's rows/s on
this MLP peaks between 64 and 1,024 rows and falls past that (caches)."""
TICKS = os.sysconf("SC_CLK_TCK")


def build_model(directory: Path) -> Path:
    """The MLP 64→256→256→10 as ONNX (no ZipMap: plain tensors)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    features, labels = load_digits(return_X_y=True)
    features = (features / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=30, random_state=0)
        mlp.fit(features, labels)
        model = to_onnx(mlp, features[:1], options={id(mlp): {"zipmap": False}})
    path = directory / "mlp.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def sample(rows: int) -> np.ndarray[Any, Any]:
    from sklearn.datasets import load_digits

    features = (load_digits().data / 16.0).astype(np.float32)
    return np.resize(features, (rows, 64))


def pin(cpu: int) -> None:
    if len(os.sched_getaffinity(0)) > 1 or cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


@dataclass
class Figures:
    """Requests per second, latency percentiles (ms), the CPU time the serving process
    spent per request (ms) and the mean requests per batch of one measurement."""

    rate: float
    p50: float = float("nan")
    p99: float = float("nan")
    cpu_ms: float = float("nan")
    mean_batch: float = float("nan")


def batch_requests(rows: int, concurrency: int) -> int:
    """Requests in one full batch: all ``concurrency`` of them, up to the row cap."""
    return max(1, min(concurrency, MAX_BATCH_ROWS // rows))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _limit_worker(path: str, rows: int, concurrency: int, seconds: float, out: Any) -> None:
    import onnxruntime as ort

    pin(SERVER_CPU)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    requests = batch_requests(rows, concurrency)
    batch = sample(rows * requests)
    for _ in range(20):
        session.run(None, {"X": batch})
    calls, started, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        session.run(None, {"X": batch})
        calls += 1
    out.send((calls * requests / elapsed, (time.process_time() - cpu) / (calls * requests)))


def measure_limit(path: Path, rows: int, concurrency: int, seconds: float) -> Figures:
    """Raw onnxruntime on CPU 0 with full batches at ``concurrency``."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    worker = context.Process(
        target=_limit_worker, args=(str(path), rows, concurrency, seconds, send)
    )
    worker.start()
    rate, cpu = receive.recv()
    worker.join()
    return Figures(rate, cpu_ms=1000 * cpu, mean_batch=batch_requests(rows, concurrency))


def request_bytes(port: int, rows: int, model: str = "mlp") -> bytes:
    """One HTTP request as tritonclient would send it by default."""
    import tritonclient.http as triton

    tensor = triton.InferInput("X", [rows, 64], "FP32")
    tensor.set_data_from_numpy(sample(rows))
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor])
    head = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
        f"Inference-Header-Content-Length: {json_size}\r\n\r\n"
    )
    return head.encode() + bytes(body)


async def _client(
    port: int, request: bytes, stop: float, latencies: list[float], warmup: float
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (now := time.perf_counter()) < stop:
            writer.write(request)
            status = await reader.readline()
            if b" 200 " not in status:
                raise RuntimeError(f"server answered {status!r}")
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if now >= warmup:
                latencies.append(time.perf_counter() - now)
    finally:
        writer.close()


def generate_load(port: int, request: bytes, concurrency: int, seconds: float) -> Figures:
    """Closed-loop load from this process (pinned to CPU 1); figures after a warm-up."""
    latencies: list[float] = []

    async def run() -> float:
        warmup = time.perf_counter()
        stop = warmup + seconds
        await asyncio.gather(
            *(_client(port, request, stop, latencies, warmup) for _ in range(concurrency))
        )
        return stop - warmup

    elapsed = asyncio.run(run())
    ordered = sorted(latencies)
    return Figures(
        len(ordered) / elapsed,
        p50=1000 * ordered[len(ordered) // 2],
        p99=1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    )


def measure_server(
    path: Path, rows: int, batching: bool, delay_ms: float, seconds: float, workdir: Path
) -> dict[int, Figures]:
    """Starts ``aios serve`` on CPU 0 and loads it at each concurrency from CPU 1."""
    ready = workdir / f"ready-{rows}-{batching}.json"
    max_batch = MAX_BATCH_ROWS if batching else 1
    command = [
        *(sys.executable, "-m", "aios.serving", "--model", f"mlp=onnx:{path}"),
        *("--port", "0", "--ready-file", str(ready), "--threads", "1"),
        *("--max-batch-size", str(max_batch), "--max-queue-delay-ms", str(delay_ms)),
        *("--max-queue-size", "1024"),
    ]
    taskset = ["taskset", "-c", str(SERVER_CPU)] if shutil.which("taskset") else []
    server = subprocess.Popen([*taskset, *command], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        port = int(json.loads(ready.read_text())["port"])
        request = request_bytes(port, rows)
        figures = {}
        for concurrency in CONCURRENCY:
            generate_load(port, request, concurrency, 0.5)  # warm up this concurrency
            before, cpu = _batch_totals(port), cpu_seconds(server.pid)
            measured = generate_load(port, request, concurrency, seconds)
            measured.cpu_ms = 1000 * (cpu_seconds(server.pid) - cpu) / (measured.rate * seconds)
            after = _batch_totals(port)
            batches = after[1] - before[1]
            measured.mean_batch = (after[0] - before[0]) / batches / rows if batches else 1.0
            figures[concurrency] = measured
        return figures
    finally:
        server.terminate()
        server.wait(60)


def _batch_totals(port: int) -> tuple[float, float]:
    import httpx

    totals = {"sum": 0.0, "count": 0.0}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        for key in totals:
            if line.startswith(f"aios_inference_batch_size_{key}"):
                totals[key] = float(line.rsplit(" ", 1)[1])
    return totals["sum"], totals["count"]


def check_with_tritonclient(path: Path, workdir: Path) -> None:
    """One request through the official client, so the benchmark serves what it says."""
    import onnxruntime as ort
    import tritonclient.http as triton

    ready = workdir / "ready-check.json"
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "aios.serving", "--model", f"mlp=onnx:{path}"),
            *("--port", "0", "--ready-file", str(ready)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        while not ready.exists():
            if server.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        client = triton.InferenceServerClient(f"127.0.0.1:{json.loads(ready.read_text())['port']}")
        features = sample(8)
        tensor = triton.InferInput("X", [8, 64], "FP32")
        tensor.set_data_from_numpy(features)
        served = client.infer("mlp", [tensor]).as_numpy("probabilities")
        client.close()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(served, session.run(["probabilities"], {"X": features})[0])
    finally:
        server.terminate()
        server.wait(60)


def ray_serve_peer(path: Path, rows: int, seconds: float) -> dict[int, Figures] | None:
    """The same model behind Ray Serve with ``@serve.batch``; None when Ray is absent."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.serve") is None:
        return None
    from ray import serve  # pragma: no cover - only where ray[serve] is installed

    port = 8123

    @serve.deployment(ray_actor_options={"num_cpus": 1})
    class Mlp:
        def __init__(self, model: str) -> None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.session = ort.InferenceSession(model, options)

        @serve.batch(max_batch_size=batch_requests(rows, 64), batch_wait_timeout_s=0.001)  # type: ignore[untyped-decorator]
        async def infer(self, batches: list[np.ndarray[Any, Any]]) -> list[Any]:
            sizes = [len(b) for b in batches]
            out = self.session.run(["probabilities"], {"X": np.concatenate(batches)})[0]
            return np.split(out, np.cumsum(sizes)[:-1])

        async def __call__(self, request: Any) -> bytes:
            body = await request.body()
            rows = np.frombuffer(body, dtype=np.float32).reshape(-1, 64)
            result: np.ndarray[Any, Any] = await self.infer(rows)
            return result.tobytes()

    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Mlp.bind(str(path)), route_prefix="/mlp")  # type: ignore[attr-defined]
    body = sample(rows).tobytes()
    head = (
        f"POST /mlp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    try:
        return {c: generate_load(port, request, c, seconds) for c in CONCURRENCY}
    finally:
        serve.shutdown()


def table(rows: int, results: dict[str, dict[int, Figures]]) -> str:
    """One markdown table: each concurrency, each contender, against the limit."""
    limit = results["limit: onnxruntime in-process"]
    header = "| concurrency | contender | req/s | / limit | p50 ms | p99 ms | requests/batch |"
    header += " CPU ms/request | limit CPU / CPU |"
    lines = [
        f"## {rows} row(s) per request ({rows * 256:,} bytes of FP32 in, binary tensors)",
        "",
        header,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCY:
        for name, figures in results.items():
            f = figures[c]
            cells = [
                str(c),
                name,
                f"{f.rate:,.0f}",
                f"{f.rate / limit[c].rate:.2f}",
                f"{f.p50:.2f}",
                f"{f.p99:.2f}",
                f"{f.mean_batch:.1f}",
                f"{f.cpu_ms:.3f}",
                f"{limit[c].cpu_ms / f.cpu_ms:.2f}" if f.cpu_ms == f.cpu_ms else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, action="append", help="rows per request")
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="max queue delay")
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 CPUs: server and load generator share one core")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        path = build_model(workdir)
        check_with_tritonclient(path, workdir)
        for rows in args.rows or [1, 128]:
            results = {
                "limit: onnxruntime in-process": {
                    c: measure_limit(path, rows, c, args.seconds) for c in CONCURRENCY
                }
            }
            pin(CLIENT_CPU)
            results["aios, dynamic batching"] = measure_server(
                path, rows, True, args.delay_ms, args.seconds, workdir
            )
            results["aios, batching off"] = measure_server(
                path, rows, False, 0.0, args.seconds, workdir
            )
            ray = ray_serve_peer(path, rows, args.seconds)
            if ray is not None:
                results["Ray Serve, @serve.batch"] = ray
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            print(table(rows, results))
            if ray is None:
                print("\nRay Serve: skipped, ray[serve] is not installed ('aios[bench]')")
            print()


if __name__ == "__main__":
    main()
