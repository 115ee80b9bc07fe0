"""What the gateway hop costs: one-row requests through the control plane's gateway
against the same replica loaded directly.

``aios up`` runs pinned to CPU 0 (its node is then that one core, so the scheduler
places the replica there too); the model is registered and deployed with one replica
(``--max-batch-size`` 1,024 rows, the benchmark's delay), and the load generator, on
CPU 1, sends the same tritonclient body to ``/v2/models/{deployment}/infer`` on the
control plane and to the replica's own ``/v2/models/{model}/versions/1/infer``. "CPU
ms/request" counts the replica alone for the direct path and the control plane plus the
replica through the gateway: the server-side cost of one request either way. The
direct requests carry the replica's secret, read from its environment as only its own
user can.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aios.client import Client
from serving_load import Figures, free_port, measure, pin, unpin, v2_request
from serving_models import BenchModel

DIRECT = "replica, direct"
GATEWAY = "through the gateway"
SERVER_CPU = 0
CLIENT_CPU = 1


def _replica_pid(port: int) -> int:
    """The pid of the ``aios.serving`` process whose endpoint is ``port``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:3] == [b"-m", b"aios.serving"]:  # not the launcher's wrapper shell
            endpoint = Path(f"/proc/{entry.name}/cwd") / "endpoint.json"
            try:
                if f'"port": {port}' in endpoint.read_text():
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError(f"no replica process serves port {port}")


def _replica_secret(pid: int) -> str:
    """The secret the controller gave the replica ``pid`` (from its environment)."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        name, _, value = entry.partition(b"=")
        if name == b"AIOS_REPLICA_SECRET":
            return value.decode()
    raise RuntimeError(f"replica {pid} was given no secret")


def measure_gateway(
    model: BenchModel,
    path: Path,
    rows: int,
    args: argparse.Namespace,
    concurrency: tuple[int, ...],
) -> dict[str, dict[int, Figures]]:
    """The direct path and the gateway path at each concurrency, one run."""
    home = args.workdir / f"plane-{time.monotonic_ns()}"
    port = free_port()
    plane = subprocess.Popen(
        [
            *("taskset", "-c", str(SERVER_CPU), str(Path(sys.executable).parent / "aios"), "up"),
            *("--port", str(port), "--home", str(home), "--no-auth"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    client = Client(url, token="")
    try:
        _wait_for(client, plane)
        client.register_model(model.name, path, "onnx")
        client.deploy(
            f"{model.name}@1",
            name=model.name,
            replicas=1,
            cpus=1,
            memory="2G",
            max_batch_size=1024,
            max_queue_delay_ms=args.delay_ms,
            max_queue_size=1024,
        )
        view = client.wait_deployment(model.name, ready=1, timeout=120)
        replica_url = view.replicas[0].url
        assert replica_url is not None
        replica_port = int(replica_url.rsplit(":", 1)[1])
        replica = _replica_pid(replica_port)
        body = model.sample(rows)
        direct = v2_request(
            f"127.0.0.1:{replica_port}",
            f"/v2/models/{model.name}/versions/1/infer",
            body,
            {"X-AIOS-Replica-Secret": _replica_secret(replica)},
        )
        routed = v2_request(f"127.0.0.1:{port}", f"/v2/models/{model.name}/infer", body, {})
        pin(CLIENT_CPU)
        try:
            results: dict[str, dict[int, Figures]] = {DIRECT: {}, GATEWAY: {}}
            for c in concurrency:
                seconds = args.seconds
                results[DIRECT][c] = measure(replica_port, direct, c, seconds, [replica])
                results[GATEWAY][c] = measure(port, routed, c, seconds, [plane.pid, replica])
            return results
        finally:
            unpin()
            client.undeploy(model.name)
            _wait_gone(replica)
    finally:
        client.close()
        plane.send_signal(signal.SIGTERM)
        try:
            plane.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(plane.pid, signal.SIGKILL)
            plane.wait(10)


def _wait_for(client: Client, plane: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            client.deployments()
            return
        except Exception:
            if plane.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the control plane did not start") from None
            time.sleep(0.2)


def _wait_gone(pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
