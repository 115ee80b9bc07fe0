"""``aios demo``: the main job, end to end on the embedded default.

It starts a control plane on a temporary ``$AIOS_HOME`` (SQLite, local executor, the
API on a free loopback port), creates two queues that share the machine by fair share,
and runs one pipeline through the SDK: prepare scikit-learn's digits → train four
models in parallel, two per queue → evaluate → pick the best → replay a slice of the
bundled cluster trace through the scheduler under three policies. The raw data, added
to the repository with the library, is assigned to vision, and the prepared dataset
(vision's, taken by the prepare step) is shared read-only with speech
(:mod:`aios.lineage.access`). Then it registers
the two best models with their lineage, deploys them (two replicas, a 10 % canary),
sends real requests through the gateway and shifts the canary
(:mod:`aios.demo.serving`). It prints the schedule (which job ran where and when), the
results, and stops the control plane.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aios.client import Client
from aios.control import ControlPlane, Settings
from aios.control.specs import JobView, PipelineSpec
from aios.demo.data import back_up, create_repository, fetch, rerun_prepare, show_lineage
from aios.demo.serving import serve_best
from aios.demo.steps import MODELS, model_dataset

__all__ = ["demo_pipeline", "run_demo"]

QUEUES = {"vision": ("logistic", "forest"), "speech": ("svm", "knn")}
REPLAY = "--limit 2000 --policy fifo,las,drf"
RAW, DATASET = "digits-raw", "digits"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _aios_script() -> str:
    script = Path(sys.executable).with_name("aios")
    return str(script) if script.exists() else "aios"


def demo_pipeline() -> PipelineSpec:
    """The pipeline the demo runs: its steps hand each other dataset versions."""
    step = [sys.executable, "-m", "aios.demo.steps"]
    steps: dict[str, dict[str, object]] = {
        "prepare": {
            "command": [*step, "prepare"],
            "queue": "vision",
            "memory": "512M",
            "inputs": [f"{RAW}@1"],
            "outputs": [DATASET],
        },
    }
    for queue, models in QUEUES.items():
        for model in models:
            steps[f"train-{model}"] = {
                "command": [*step, "train", model],
                "queue": queue,
                "memory": "1G",
                "needs": ["prepare"],
                "inputs": [f"{DATASET}@latest"],
                "outputs": [model_dataset(model)],
            }
    steps["evaluate"] = {
        "command": [*step, "evaluate"],
        "queue": "vision",
        "memory": "512M",
        "needs": [f"train-{m}" for m in MODELS],
        "inputs": [f"{DATASET}@latest", *(f"{model_dataset(m)}@latest" for m in MODELS)],
        "outputs": ["scores"],
    }
    steps["pick"] = {
        "command": [*step, "pick"],
        "queue": "vision",
        "needs": ["evaluate"],
        "inputs": ["scores@latest"],
        "outputs": ["choice"],
    }
    steps["replay"] = {
        "command": f"{_aios_script()} simulate {REPLAY}",
        "queue": "speech",
        "memory": "2G",
        "needs": ["pick"],
    }
    steps["replay"]["env"] = {"COLUMNS": "200"}
    return PipelineSpec.model_validate({"name": "digits", "steps": steps})


def _schedule(jobs: list[JobView], origin: float) -> Table:
    table = Table(title="Schedule (seconds from submission)")
    for column in ("step", "queue", "node", "cores", "start", "end", "state"):
        table.add_column(column, justify="right" if column in {"start", "end"} else "left")
    for job in sorted(jobs, key=lambda j: (j.started_at or 0, j.id)):
        last = job.attempts[-1] if job.attempts else None
        table.add_row(
            job.step or job.name,
            job.queue,
            last.node if last else "-",
            ",".join(str(c) for c in last.cores[0]) if last else "-",
            f"{job.started_at - origin:.2f}" if job.started_at else "-",
            f"{job.finished_at - origin:.2f}" if job.finished_at else "-",
            job.state,
        )
    return table


def _wait_idle(client: Client, timeout: float = 60.0) -> None:
    """Waits for the undeployed replicas to drain and stop before the plane stops."""
    deadline = time.monotonic() + timeout
    while any(j.state in {"queued", "running"} for j in client.jobs()):
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)


def run_demo(console: Console | None = None) -> int:
    """Runs the demo; returns 0 when the pipeline succeeded."""
    console = console or Console()
    home = Path(tempfile.mkdtemp(prefix="aios-demo-"))
    workdir = home / "shared"
    workdir.mkdir()
    location = create_repository(console, home, RAW)
    plane = ControlPlane(
        Settings(home=home, port=_free_port(), policy="drf", tick=0.2, data_repo=str(location))
    )
    try:
        plane.start_background()
        assert plane.admin_token_path is not None
        token = Path(plane.admin_token_path).read_text().strip()
        console.print(f"control plane up at {plane.url} (state in {home})")
        console.print(
            "jobs run sandboxed (bubblewrap): own processes, own directory, the host "
            "read-only, a token of their own"
            if plane.sandbox is not None
            else "[yellow]jobs run WITHOUT a sandbox here (no bubblewrap)[/yellow]"
        )
        with Client(plane.url, token=token) as client:
            (node,) = client.nodes()
            cores = node.allocatable["cpu"] // 1000
            console.print(f"node {node.name}: {cores} cores, {node.allocatable['gpu']} GPUs")
            share = max(cores // 2, 1)
            for queue in QUEUES:
                client.create_queue(queue, quota={"cpu": share}, cohort="lab")
            console.print(
                f"queues vision and speech: {share} core(s) each, borrowing in cohort lab"
            )
            # Added with the library, the raw data is no tenant's until an admin says.
            client.assign_dataset(RAW, "vision")
            submitted = time.time()
            spec = demo_pipeline()
            pipeline = client.submit_pipeline(spec)
            console.print(f"pipeline {pipeline.id} submitted: {len(pipeline.steps)} steps")
            # Its prepare step took the name digits for vision at submission; speech's
            # members, whose models train on it, read it (lineage, dashboard) once shared.
            sharing = client.share_dataset(DATASET, "speech", read_only=True)
            console.print(
                f"datasets: {RAW} assigned to vision; {DATASET} owned by {sharing.owner}, "
                f"shared read-only with {', '.join(s.queue for s in sharing.shares)}"
            )
            done = client.wait_pipeline(pipeline.id, timeout=900)
            jobs = [client.get(step.id) for step in done.steps.values()]
            console.print(_schedule(jobs, submitted))
            if done.state != "succeeded":
                for job in jobs:
                    if job.state != "succeeded":
                        console.print(f"[red]{job.step}: {job.state} {job.message}[/red]")
                return 1
            fetch(console, location, "scores@latest", workdir / "scores")
            fetch(console, location, "choice@latest", workdir / "choice")
            scores = json.loads((workdir / "scores" / "scores.json").read_text())
            best = json.loads((workdir / "choice" / "best.json").read_text())
            results = Table(title="Models on the digits test set")
            results.add_column("model")
            results.add_column("queue")
            results.add_column("accuracy", justify="right")
            for queue, models in QUEUES.items():
                for model in models:
                    results.add_row(model, queue, f"{scores[model]:.4f}")
            console.print(results)
            console.print(f"best model: [bold]{best['model']}[/bold] ({best['accuracy']:.4f})")
            replay = done.steps["replay"]
            console.print(f"replay of the bundled trace ({REPLAY}), run as job {replay.id}:")
            console.print("".join(client.logs(replay.id)).rstrip(), markup=False)
            trained = {m: done.steps[f"train-{m}"] for m in MODELS}
            fetch(console, location, f"{DATASET}@latest", workdir / DATASET)
            for model in sorted(scores, key=lambda m: (-scores[m], m))[:2]:
                dataset = model_dataset(model)
                fetch(console, location, f"{dataset}@latest", workdir / dataset)
            served = serve_best(console, client, token, workdir, trained, scores)
            show_lineage(console, client, served)
            rerun_prepare(console, client, spec)
            _wait_idle(client)
            back_up(console, home, location)
        return 0
    finally:
        plane.stop()
        console.print("control plane stopped")
        shutil.rmtree(home, ignore_errors=True)
