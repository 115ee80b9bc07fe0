"""The serving benchmark's load generator and its measures, shared by every contender.

Closed loop: each of ``concurrency`` clients sends its next request when the previous
answer arrives, over one keep-alive HTTP/1.1 connection, with asyncio streams. The
request is pre-built bytes and only the status line, the headers and the body length
are read: a few tens of microseconds per request, far less than any server spends, so
the generator does not set the pace. Every contender gets the same bytes (the body
tritonclient builds by default) and the same generator, from the same pinned core.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    """Requests per second, latency percentiles (ms), the CPU time the serving side
    spent per request (ms) and the mean requests per batch of one measurement."""

    rate: float
    p50: float = float("nan")
    p99: float = float("nan")
    cpu_ms: float = float("nan")
    mean_batch: float = float("nan")


def pin(cpu: int) -> None:
    """Runs this process on ``cpu`` only (when the machine has it)."""
    if cpu in os.sched_getaffinity(0) or len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})


def unpin() -> None:
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def cpu_seconds(*pids: int) -> float:
    """User and system CPU time so far of processes ``pids`` and all their threads;
    a process that is gone counts nothing."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def session_pids(session: int) -> list[int]:
    """Every process of session ``session`` (a server that forks workers, like Ray)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == session:
            pids.append(int(entry.name))
    return pids


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def v2_request(
    address: str, path: str, model_input: np.ndarray[Any, Any], headers: dict[str, str]
) -> bytes:
    """A POST of ``model_input`` as input ``X`` to ``path``, built as tritonclient
    builds it by default (JSON header, binary tensor), as raw HTTP/1.1 bytes."""
    import tritonclient.http as triton

    tensor = triton.InferInput("X", list(model_input.shape), "FP32")
    tensor.set_data_from_numpy(model_input)
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor])
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {address}",
        "Content-Type: application/octet-stream",
        f"Content-Length: {len(body)}",
        f"Inference-Header-Content-Length: {json_size}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + bytes(body)


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
    """Closed-loop load from this process for ``seconds``; rate and latency percentiles."""
    latencies: list[float] = []

    async def run() -> float:
        started = time.perf_counter()
        stop = started + seconds
        await asyncio.gather(
            *(_client(port, request, stop, latencies, started) for _ in range(concurrency))
        )
        return stop - started

    elapsed = asyncio.run(run())
    ordered = sorted(latencies)
    return Figures(
        len(ordered) / elapsed,
        p50=1000 * ordered[len(ordered) // 2],
        p99=1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    )


def measure(
    port: int, request: bytes, concurrency: int, seconds: float, pids: list[int]
) -> Figures:
    """Warms up at ``concurrency``, then measures, with the CPU ``pids`` spent per request."""
    generate_load(port, request, concurrency, min(0.5, seconds))
    cpu = cpu_seconds(*pids)
    figures = generate_load(port, request, concurrency, seconds)
    figures.cpu_ms = 1000 * (cpu_seconds(*pids) - cpu) / (figures.rate * seconds)
    return figures
