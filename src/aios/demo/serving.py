"""The demo's serving part: register the pipeline's two best models with their lineage,
deploy the best with two replicas and the runner-up as a 10 % canary, send real
requests with the official Triton client through the control plane's gateway, shift
the canary, and print latency and the traffic split."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from aios.client import Client
from aios.control.specs import JobView
from aios.demo.steps import model_dataset

__all__ = ["serve_best"]

NAME = "digits"
REQUESTS = 400
CONCURRENCY = 8


def _register(client: Client, workdir: Path, model: str, job: JobView, accuracy: float) -> int:
    version = client.register_model(
        NAME,
        workdir / model_dataset(model) / f"{model}.pkl",
        "sklearn",
        from_job=job.id,
        dataset=f"{NAME}@latest",  # recorded as the version number it trained on
        metrics={"accuracy": accuracy},
        to_onnx=True,
        description=f"{model} on the digits, trained by job {job.id}",
        tags={"estimator": model},
    )
    return version.version


def _send(url: str, token: str, images: np.ndarray[Any, Any], count: int) -> list[Any]:
    """``count`` one-image requests from ``CONCURRENCY`` threads, each with its own
    Triton client (its HTTP library is bound to the thread that made it): per request,
    (seconds, version that answered, label)."""
    import tritonclient.http as triton

    results: list[Any] = [None] * count

    def worker(first: int) -> None:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        try:
            for i in range(first, count, CONCURRENCY):
                image = images[i % len(images) : i % len(images) + 1]
                tensor = triton.InferInput("input", list(image.shape), "FP32")
                tensor.set_data_from_numpy(image)
                started = time.perf_counter()
                answer = client.infer(NAME, [tensor], headers={"Authorization": f"Bearer {token}"})
                took = time.perf_counter() - started
                label = answer.as_numpy("label")
                assert label is not None
                results[i] = (took, str(answer.get_response()["model_version"]), int(label[0]))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any(result is None for result in results):
        raise RuntimeError("some demo requests were not answered")
    return results


def serve_best(
    console: Console,
    client: Client,
    token: str,
    workdir: Path,
    train_jobs: dict[str, JobView],
    scores: dict[str, float],
) -> str:
    """Registers, deploys, serves and undeploys; returns the best model's version."""
    ranked = sorted(scores, key=lambda m: (-scores[m], m))
    best, runner_up = ranked[0], ranked[1]
    first = _register(client, workdir, best, train_jobs[best], scores[best])
    second = _register(client, workdir, runner_up, train_jobs[runner_up], scores[runner_up])
    for version in (first, second):
        view = client.model_version(NAME, version)
        inputs = ", ".join(f"{t.name} {t.datatype}{list(t.shape)}" for t in view.signature.inputs)
        console.print(
            f"registered {NAME}@{version}: {view.tags['estimator']} "
            f"(accuracy {view.metrics['accuracy']:.4f}), from job {view.from_job} "
            f"on {view.dataset}, "
            f"ONNX input {inputs}"
        )

    started = time.perf_counter()
    client.deploy(
        f"{NAME}@{first}",
        replicas=2,
        canary=f"{NAME}@{second}:10",
        cpus=0.5,
        memory="512M",
        max_batch_size=16,
    )
    deployed = client.wait_deployment(NAME, ready=2, timeout=300)
    jobs = ", ".join(f"job {r.job_id}" for r in deployed.replicas)
    console.print(
        f"deployed {NAME}: 2 replicas ({jobs}) ready in {time.perf_counter() - started:.1f} s; "
        f"gateway {client.url}/v2/models/{NAME}/infer"
    )

    data = np.load(workdir / "digits" / "digits.npz")  # the version the models trained on
    images = np.asarray(data["x_test"], np.float32)
    labels = np.asarray(data["y_test"])
    table = Table(title=f"{REQUESTS} one-image requests, {CONCURRENCY} in flight (tritonclient)")
    for column in ("traffic", "p50 ms", "p99 ms", "req/s", "served by version", "accuracy"):
        table.add_column(column, justify="left" if column == "traffic" else "right")
    for weights in ({first: 90, second: 10}, {first: 50, second: 50}, {first: 100}):
        client.set_traffic(NAME, weights)
        began = time.perf_counter()
        results = _send(client.url, token, images, REQUESTS)
        elapsed = time.perf_counter() - began
        latencies = sorted(took * 1000 for took, _, _ in results)
        served = Counter(version for _, version, _ in results)
        correct = sum(label == labels[i % len(labels)] for i, (_, _, label) in enumerate(results))
        table.add_row(
            " / ".join(f"v{v} {w}%" for v, w in weights.items()),
            f"{statistics.median(latencies):.1f}",
            f"{latencies[int(0.99 * (len(latencies) - 1))]:.1f}",
            f"{len(results) / elapsed:.0f}",
            ", ".join(f"v{v}: {n}" for v, n in sorted(served.items())),
            f"{correct / len(results):.3f}",
        )
    console.print(table)
    console.print(f"rolled back to {NAME}@{first} at 100 %; removing the deployment")
    client.undeploy(NAME)
    return f"{NAME}@{first}"
