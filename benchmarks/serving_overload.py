"""Goodput under overload: a replica at saturation (64 connections) and at 8× (512).

The replica runs with ``aios serve``'s defaults (64 rows per batch, 2 ms of delay, a
queue of 256 requests), so that 512 clients are more than it holds (64 in the running
batch, 256 waiting) and the rest are refused with 503. wrk (C, one thread, pinned to
CPU 1; a Python generator would compete with the server) sends one-row requests over
keep-alive connections as fast as they are answered, and retries a 503 at once: the
clients of the issue, that ignore ``Retry-After``. Goodput is 200s per second; the
ratio is goodput at 512 connections over goodput at 64, in the same run, server and
body; the goal is ≥ 0.80.

The machine is shared: other tenants' processes take CPU 0 from the server at times,
which moves goodput by tens of percent between two measurements seconds apart. So each
measurement also reads the server's threads' scheduler statistics
(``/proc/PID/task/*/schedstat``): the CPU it ran, as µs per 200 (what overload costs
the server, whoever else runs; "CPU ratio" is goodput per CPU second at 512 over that
at 64), and the time its threads waited, runnable, for CPU 0, in cores: the other
tenants' share, plus the server's event loop and model thread waiting on each other
(both are busy at once more often when the queue is always full, at 512).

Two bodies: V2 JSON (``data`` as a list) and the binary tensor extension
(tritonclient's default). ``--compare-src DIR`` runs another ``aios`` package (the
code before a change) in the same run, interleaved.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving_models import INPUT, BenchModel

CLIENT_CPU = 1
SATURATION = 64
OVERLOAD = 512
WRK_TIMEOUT = "10s"
"""wrk's per-request timeout: a refused client may be held back a second or more."""


@dataclass(frozen=True)
class Counts:
    """What wrk saw in one measurement."""

    answered: int
    refused: int  # 503s
    failed: int  # other statuses ≥ 400, and socket errors
    seconds: float
    ran: float = 0.0  # CPU seconds the server's threads ran
    waited: float = 0.0  # seconds they waited, runnable, for a CPU

    @property
    def goodput(self) -> float:
        return (self.answered - self.refused - self.failed) / self.seconds

    @property
    def cpu_us(self) -> float:
        """The server's CPU µs per 200."""
        good = self.answered - self.refused - self.failed
        return 1e6 * self.ran / good if good else float("nan")

    @property
    def refused_share(self) -> float:
        return self.refused / self.answered if self.answered else 0.0


_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("COUNTS %d %d %d %d\\n", summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout, summary.duration))
end
"""


def wrk_script(directory: Path, name: str, body: bytes, headers: dict[str, str]) -> Path:
    """A wrk Lua script that POSTs ``body`` with ``headers`` and prints its counts."""
    body_file = directory / f"{name}.body"
    body_file.write_bytes(body)
    lines = [
        'wrk.method = "POST"',
        f'local f = assert(io.open("{body_file}", "rb"))',
        "wrk.body = f:read('*a')",
        "f:close()",
        *(f'wrk.headers["{key}"] = "{value}"' for key, value in headers.items()),
    ]
    script = directory / f"{name}.lua"
    script.write_text("\n".join(lines) + _DONE)
    return script


def bodies(model: BenchModel, secret: dict[str, str]) -> dict[str, tuple[bytes, dict[str, str]]]:
    """One row as a V2 JSON body and as tritonclient's binary body, with their headers."""
    import tritonclient.http as triton

    row = model.sample(1)
    tensor = {"name": INPUT, "shape": list(row.shape), "datatype": "FP32"}
    as_json = json.dumps({"inputs": [{**tensor, "data": row.ravel().tolist()}]}).encode()
    infer_input = triton.InferInput(INPUT, list(row.shape), "FP32")
    infer_input.set_data_from_numpy(np.ascontiguousarray(row))
    binary, json_size = triton.InferenceServerClient.generate_request_body([infer_input])
    return {
        "JSON": (as_json, {"Content-Type": "application/json", **secret}),
        "binary": (
            bytes(binary),
            {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(json_size),
                **secret,
            },
        ),
    }


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> Counts:
    """wrk on CPU 1 for ``seconds`` at ``connections``."""
    command = [
        *("taskset", "-c", str(CLIENT_CPU), "wrk", "-t1", f"-c{connections}"),
        *(f"-d{max(1, round(seconds))}s", "--timeout", WRK_TIMEOUT, "-s", str(script), url),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"COUNTS (\d+) (\d+) (\d+) (\d+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no counts: {out}")
    answered, status_errors, socket_errors, micros = (int(x) for x in found.groups())
    return Counts(answered, status_errors, socket_errors, micros / 1e6)


def refusals(port: int, secret: dict[str, str]) -> tuple[float, float]:
    """503s and all errors answered so far, from the server's /metrics."""
    import httpx

    refused = errors = 0.0
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", headers=secret).text.splitlines():
        if line.startswith("aios_inference_errors_total"):
            value = float(line.rsplit(" ", 1)[1])
            errors += value
            if 'code="503"' in line:
                refused += value
    return refused, errors


def scheduled(pid: int) -> tuple[float, float]:
    """Seconds the threads of ``pid`` have run, and waited runnable for a CPU, so far."""
    ran = waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except FileNotFoundError:  # a thread that ended
            continue
        ran += int(fields[0])
        waited += int(fields[1])
    return ran / 1e9, waited / 1e9


def measure_load(
    port: int,
    pid: int,
    model: str,
    script: Path,
    connections: int,
    seconds: float,
    secret: dict[str, str],
) -> Counts:
    """A short warm-up, then one measurement. wrk counts every status ≥ 400 as one;
    503s are told apart by the server's error counts over the measurement (a Lua
    ``response`` callback would cost wrk a call per answer)."""
    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
    run_wrk(url, script, connections, 1)
    before, cpu = refusals(port, secret), scheduled(pid)
    counts = run_wrk(url, script, connections, seconds)
    cpu_after, after = scheduled(pid), refusals(port, secret)
    refused = round(after[0] - before[0])
    other = round(after[1] - before[1]) - refused
    return Counts(
        counts.answered,
        refused,
        other + counts.failed,
        counts.seconds,
        ran=cpu_after[0] - cpu[0],
        waited=cpu_after[1] - cpu[1],
    )


Row = dict[str, Any]


def table(rows: list[Row]) -> str:
    """Medians over runs, per server and body: goodput at both loads and their ratio,
    the server's CPU per 200 at both, and how much CPU it was kept waiting for."""
    lines = [
        f"| server | body | 200/s at {SATURATION} | 200/s at {OVERLOAD} | ratio "
        f"| 503 share at {OVERLOAD} | CPU µs/200 at {SATURATION} | at {OVERLOAD} "
        "| CPU ratio | wait, cores | other errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    keys = list(dict.fromkeys((row["server"], row["body"]) for row in rows))
    for server, body in keys:
        mine = [row for row in rows if (row["server"], row["body"]) == (server, body)]

        def mid(field: str, of: list[Row] = mine) -> float:
            return statistics.median(float(row[field]) for row in of)

        lines.append(
            f"| {server} | {body} | {mid('saturated'):,.0f} | {mid('overloaded'):,.0f} "
            f"| {mid('ratio'):.2f} | {mid('refused_share'):.0%} | {mid('cpu_saturated'):.0f} "
            f"| {mid('cpu_overloaded'):.0f} | {mid('cpu_ratio'):.2f} "
            f"| {mid('wait_saturated'):.2f} / {mid('wait_overloaded'):.2f} "
            f"| {mid('failed'):.0f} |"
        )
    return "\n".join(lines)


def overload_runs(
    model: BenchModel,
    path: Path,
    args: argparse.Namespace,
    start_server: Any,
    secret: dict[str, str],
) -> list[Row]:
    """Every server × body, ``args.runs`` times interleaved: one row per measurement."""
    servers: dict[str, Path | None] = {"aios": None}
    if args.compare_src is not None:
        servers[f"aios from {args.compare_src}"] = args.compare_src
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        scripts = {
            kind: wrk_script(Path(tmp), kind, body, headers)
            for kind, (body, headers) in bodies(model, secret).items()
        }
        for _ in range(args.runs):
            for name, source in servers.items():
                server, port = start_server(model, path, args.workdir, source)
                try:
                    for kind, script in scripts.items():
                        load = (port, server.pid, model.name, script)
                        saturated = measure_load(*load, SATURATION, args.seconds, secret)
                        overloaded = measure_load(*load, OVERLOAD, args.seconds, secret)
                        rows.append(
                            {
                                "server": name,
                                "body": kind,
                                "saturated": saturated.goodput,
                                "overloaded": overloaded.goodput,
                                "ratio": overloaded.goodput / saturated.goodput,
                                "refused_share": overloaded.refused_share,
                                "cpu_saturated": saturated.cpu_us,
                                "cpu_overloaded": overloaded.cpu_us,
                                # goodput per CPU second at 512 over that at 64
                                "cpu_ratio": saturated.cpu_us / overloaded.cpu_us,
                                "wait_saturated": saturated.waited / saturated.seconds,
                                "wait_overloaded": overloaded.waited / overloaded.seconds,
                                "failed": saturated.failed + overloaded.failed,
                            }
                        )
                        print(
                            f"  {name}, {kind}: {saturated.goodput:,.0f} → "
                            f"{overloaded.goodput:,.0f} 200/s "
                            f"({overloaded.refused_share:.0%} 503s); CPU µs/200 "
                            f"{saturated.cpu_us:.0f} → {overloaded.cpu_us:.0f}; wait "
                            f"{saturated.waited / saturated.seconds:.2f} → "
                            f"{overloaded.waited / overloaded.seconds:.2f} cores",
                            flush=True,
                        )
                finally:
                    server.terminate()
                    server.wait(60)
    return rows
