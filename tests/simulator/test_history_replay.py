"""What-if replay of a real control plane's history: the jobs a test ran through it,
replayed by ``aios simulate --from-history``, give the metrics of a direct simulator run
of the same jobs on the same cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aios.cli.main import app
from aios.client import Client
from aios.control.specs import JobView
from aios.resources import parse_memory
from aios.scheduler import PreemptionCost
from aios.simulator import ClusterSpec, TraceJob, simulate
from aios.simulator.history import replay_inputs
from tests.control.control_harness import CORES, Running, start_plane, stop_plane
from tests.control.test_policy_switch import with_history_routes

POLICIES = ("fifo", "las", "drf")
runner = CliRunner(
    env={"COLUMNS": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}
)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A control plane (SQLite, local executor, one node of this machine's cores with
    two pretend T4 GPUs) that has run a small mixed workload in two queues: short jobs
    with and without GPUs, a running job cancelled, and a queued job cancelled before
    it ever started."""
    running = with_history_routes(start_plane(tmp_path_factory.mktemp("plane") / "home"))
    try:
        admin = running.admin
        for queue in ("red", "blue"):
            admin.create_queue(queue)
        holder = admin.submit(["sleep", "30"], cpus=1, gpus=2, queue="red")
        _wait_state(admin, holder.id, "running")
        never = admin.submit(["true"], cpus=1, gpus=2, queue="blue")
        admin.cancel(never.id)
        admin.cancel(holder.id)
        jobs = [
            admin.submit(["sleep", f"0.{i + 1}"], cpus=1, gpus=i % 3, queue=("red", "blue")[i % 2])
            for i in range(6)
        ]
        jobs.append(admin.submit(["false"], cpus=1, queue="blue"))
        for job in [holder, *jobs]:
            admin.wait(job.id, timeout=60)
        yield running
    finally:
        stop_plane(running)


def _wait_state(client: Client, job_id: int, state: str) -> None:
    """Polls the job until it is in ``state`` (the API has no wait for a start)."""
    deadline = time.monotonic() + 30
    while client.get(job_id).state != state:
        assert time.monotonic() < deadline, f"job {job_id} never reached {state}"
        time.sleep(0.05)


def direct_trace(views: list[JobView]) -> list[TraceJob]:
    """The trace of the jobs that started and ended, built here from the jobs as the API
    shows them: submit offsets from the first, the last attempt's run time, the whole
    gang's resources, the queue as the tenant, the name and the preemption cost."""
    ran = sorted(
        (v for v in views if v.started_at is not None and v.finished_at is not None),
        key=lambda v: (v.submitted_at, v.id),
    )
    origin = ran[0].submitted_at
    return [
        TraceJob(
            f"job-{v.id}",
            v.submitted_at - origin,
            v.finished_at - v.started_at,
            v.gpus * v.replicas,
            v.cpus * v.replicas,
            v.memory * v.replicas,
            v.queue,
            v.name,
            v.restore,
            v.checkpoint_every,
        )
        for v in ran
        if v.finished_at is not None and v.started_at is not None  # for the type checker
    ]


def this_cluster() -> ClusterSpec:
    """The harness's one node, as the simulator sees it."""
    return ClusterSpec(
        nodes=1,
        gpus_per_node=2,
        cpus_per_node=CORES,
        memory_per_node=parse_memory("8G"),
        gpu_kind="T4",
    )


def test_history_is_the_jobs_that_ran_on_the_current_nodes(history: Running) -> None:
    """The history's trace holds every job that started (the cancelled running one
    included) and not the one cancelled while queued; its cluster is the real node."""
    views = history.admin.jobs(limit=100)
    replay = replay_inputs(history.admin.history())
    assert replay.trace == direct_trace(views)
    assert len(replay.trace) == len(views) - 1
    assert replay.cluster == this_cluster()
    state = {f"job-{v.id}": v.state for v in views}
    assert [state[t.id] for t in replay.trace].count("cancelled") == 1


def test_what_if_replay_matches_a_direct_simulator_run(history: Running) -> None:
    """``aios simulate --from-history`` prints, for each policy, the metrics that the
    simulator gives for the same jobs on the same cluster."""
    direct = direct_trace(history.admin.jobs(limit=100))
    result = runner.invoke(
        app,
        [
            "--url",
            history.url,
            "--token-file",
            str(history.home / "admin.token"),
            "simulate",
            "--from-history",
            "--since",
            "1h",
            "--policy",
            ",".join(POLICIES),
            "--json",
            "--no-bound",
        ],
    )
    assert result.exit_code == 0, result.stderr
    replayed = json.loads(result.stdout)
    assert [row["policy"] for row in replayed] == list(POLICIES)
    for row, policy in zip(replayed, POLICIES, strict=True):
        expected = simulate(direct, this_cluster(), policy, cost=PreemptionCost()).metrics.as_dict()
        assert {key: row[key] for key in expected} == expected


def test_history_without_jobs_in_the_window_is_a_clear_error(tmp_path: Path) -> None:
    running = with_history_routes(start_plane(tmp_path / "home"))
    try:
        token = str(running.home / "admin.token")
        result = runner.invoke(
            app, ["--url", running.url, "--token-file", token, "simulate", "--from-history"]
        )
    finally:
        stop_plane(running)
    assert result.exit_code == 2
    assert "no job ran and ended" in result.stderr
    assert "nothing to replay" in result.stderr
