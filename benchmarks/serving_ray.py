"""The peer: the same ONNX model behind Ray Serve with ``@serve.batch``.

Ray must not go into the project's venv (it pins its own versions of shared packages),
so :func:`ray_python` makes a separate venv once, ``benchmarks/.venv-ray`` (git-ignored),
with ``ray[serve]``, onnxruntime and numpy from the package registry, and
:class:`RayServe` runs this file there as a subprocess::

    benchmarks/.venv-ray/bin/python benchmarks/serving_ray.py MODEL.onnx PORT \
        MAX_BATCH DELAY_MS READY_FILE

It starts a one-CPU Ray, one replica with ``max_ongoing_requests`` as high as our queue,
its ``@serve.batch`` with the same max batch size (requests) and delay as our batcher,
and Serve's HTTP proxy on loopback. The deployment takes the very body tritonclient
sends our server (V2 JSON header, binary tensor) and answers in the same format, with
less checking than ours does. Every Ray process inherits the launcher's CPU pinning.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-ray"
PACKAGES = ("ray[serve]", "onnxruntime", "numpy")
ROUTE = "/ray"


def ray_python() -> Path:
    """The ray venv's interpreter, the venv made first when missing (a few minutes)."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if not marker.exists():
        print(f"making {VENV} with {', '.join(PACKAGES)} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
        marker.write_text(" ".join(PACKAGES) + "\n")
    return python


class RayServe:
    """Ray Serve serving ``model`` on ``port``, pinned with ``taskset`` to ``cpu``;
    a context manager that waits until it answers and tears all of Ray down after."""

    def __init__(
        self, model: Path, port: int, max_batch: int, delay_ms: float, cpu: int, workdir: Path
    ) -> None:
        self.ready = workdir / f"ray-ready-{port}"
        self.command = [
            *("taskset", "-c", str(cpu)),
            *(str(ray_python()), __file__, str(model), str(port)),
            *(str(max_batch), str(delay_ms), str(self.ready)),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RayServe:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": ""}
        self.process = subprocess.Popen(
            self.command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray Serve did not start: {' '.join(self.command)}")
            time.sleep(0.2)
        return self

    @property
    def session(self) -> int:
        """The session id of every Ray process (the launcher started a new session)."""
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *_exc: object) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _serve(model: str, port: int, max_batch: int, delay_ms: float, ready: Path) -> None:
    """Runs in the ray venv: starts Ray and the deployment, waits for SIGTERM."""
    import numpy as np
    import onnxruntime as ort
    import ray
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    quiet = {"enable_access_log": False, "log_level": "WARNING"}

    @serve.deployment(
        ray_actor_options={"num_cpus": 1}, max_ongoing_requests=1024, logging_config=quiet
    )
    class V2Model:
        def __init__(self, path: str) -> None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=delay_ms / 1000)
        async def infer(self, inputs: list[Any]) -> list[Any]:
            sizes = np.cumsum([len(rows) for rows in inputs])[:-1]
            outputs = self.session.run(["probabilities"], {"X": np.concatenate(inputs)})[0]
            return list(np.split(outputs, sizes))

        async def __call__(self, request: Request) -> Response:
            body = await request.body()
            json_size = int(request.headers["inference-header-content-length"])
            shape = json.loads(body[:json_size])["inputs"][0]["shape"]
            rows = np.frombuffer(body, np.float32, offset=json_size).reshape(shape)
            raw = (await self.infer(rows)).tobytes()
            header = json.dumps(
                {
                    "model_name": "ray",
                    "model_version": "1",
                    "outputs": [
                        {
                            "name": "probabilities",
                            "datatype": "FP32",
                            "shape": [len(rows), 10],
                            "parameters": {"binary_data_size": len(raw)},
                        }
                    ],
                },
                separators=(",", ":"),
            ).encode()
            return Response(
                header + raw,
                media_type="application/octet-stream",
                headers={"Inference-Header-Content-Length": str(len(header))},
            )

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=quiet)
    serve.run(V2Model.bind(model), route_prefix=ROUTE)  # type: ignore[attr-defined]
    stop = False

    def _stop(_signal: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    ready.write_text(json.dumps({"port": port}))
    while not stop:
        time.sleep(0.2)
    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), Path(sys.argv[5]))
