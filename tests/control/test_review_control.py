"""Holes found in review: tenancy of pipelines, what a refused request leaves behind,
jobs that ask for nothing, the admin token's file and stopping with a log followed."""

from __future__ import annotations

import base64
import os
import stat
import threading
import time
import tracemalloc
from pathlib import Path

import cloudpickle
import httpx
import pytest

from aios.client import ApiError, Client
from aios.control import ControlPlane, Settings
from aios.control.specs import PipelineSpec
from tests.control.control_harness import (
    Running,
    free_port,
    local_node,
    start_plane,
    stop_plane,
)

SMALL: dict[str, float | str] = {"cpus": 0.1, "memory": "16M"}


def test_a_tenant_cannot_file_a_pipeline_under_another_tenants_queue(control: Running) -> None:
    """Tenant a naming queue b for the pipeline (its steps in a) is refused with 403,
    and tenant b finds no pipeline of a's."""
    control.admin.create_queue("a")
    control.admin.create_queue("b")
    spec = PipelineSpec.model_validate(
        {"name": "p", "queue": "b", "steps": {"s": {"command": ["true"], "queue": "a", **SMALL}}}
    )
    alice_token = control.admin.create_token("ua", tenant="a")
    bob_token = control.admin.create_token("ub", tenant="b")
    with control.client(alice_token) as alice, control.client(bob_token) as bob:
        with pytest.raises(ApiError) as refused:
            alice.submit_pipeline(spec)
        assert refused.value.status == 403
        assert bob.pipelines() == []
    assert control.admin.jobs() == []


def test_a_pipeline_under_an_unknown_queue_is_refused(control: Running) -> None:
    """An admin's pipeline whose own queue does not exist is a 400 naming the queue,
    even when every step names a queue that does."""
    spec = PipelineSpec.model_validate(
        {
            "name": "p",
            "queue": "nowhere",
            "steps": {"s": {"command": ["true"], "queue": "default", **SMALL}},
        }
    )
    with pytest.raises(ApiError) as refused:
        control.admin.submit_pipeline(spec)
    assert refused.value.status == 400
    assert "nowhere" in str(refused.value)
    assert control.admin.jobs() == []


def test_a_tenant_neither_sees_nor_cancels_another_queues_step_of_a_pipeline(
    control: Running,
) -> None:
    """An admin's pipeline in queue a with a step in queue b: tenant a sees only its own
    step, and cancelling the pipeline leaves b's step running."""
    control.admin.create_queue("a")
    control.admin.create_queue("b")
    alice_token = control.admin.create_token("ua", tenant="a")
    spec = PipelineSpec.model_validate(
        {
            "name": "shared",
            "queue": "a",
            "steps": {
                "mine": {"command": ["sleep", "30"], **SMALL},
                "theirs": {"command": ["sleep", "30"], "queue": "b", **SMALL},
            },
        }
    )
    pipeline = control.admin.submit_pipeline(spec)
    with control.client(alice_token) as alice:
        assert list(alice.pipeline(pipeline.id).steps) == ["mine"]
        assert [list(p.steps) for p in alice.pipelines()] == [["mine"]]
        alice.cancel_pipeline(pipeline.id)
    assert control.admin.wait(pipeline.steps["mine"].id, timeout=30).state == "cancelled"
    assert control.admin.get(pipeline.steps["theirs"].id).state in {"queued", "running"}


def test_a_refused_batch_leaves_no_function_payload_behind(control: Running) -> None:
    """A batch whose second job is refused creates no job, and the first job's pickled
    function is not left on disk for the next job that gets its id to read."""
    payload = cloudpickle.dumps((print, ("secret",), {}))
    function = {"function": base64.b64encode(payload).decode(), **SMALL}
    refused = {"command": ["true"], "after": [999_999], **SMALL}
    with pytest.raises(ApiError) as error:
        control.admin.submit_many([function, refused])
    assert error.value.status == 400
    assert control.admin.jobs() == []
    assert sorted(os.listdir(control.home / "jobs")) == []


@pytest.mark.parametrize("resources", [{"cpus": 0}, {"cpus": "0m"}, {"memory": 0}])
def test_a_job_that_asks_for_no_cpu_or_no_memory_is_refused(
    control: Running, resources: dict[str, object]
) -> None:
    """Zero cores would run unpinned on every core, and zero memory without any limit,
    while the quota counts nothing: both are refused with a 422 naming the field."""
    body = {"command": ["true"], **SMALL, **resources}
    with pytest.raises(ApiError) as refused:
        control.admin.submit_many([body])
    assert refused.value.status == 422
    assert next(iter(resources)) in str(refused.value)
    assert control.admin.jobs() == []


def test_the_admin_token_file_is_private_even_when_one_was_there_before(
    tmp_path: Path,
) -> None:
    """A home whose database was removed but whose admin.token was left world-readable:
    the new admin token is written to a file only its owner may read."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "admin.token").write_text("stale\n")
    (home / "admin.token").chmod(0o644)
    running = start_plane(home)
    try:
        mode = stat.S_IMODE((home / "admin.token").stat().st_mode)
        assert mode == 0o600
        assert running.admin.whoami().admin
    finally:
        stop_plane(running)


def test_stopping_the_control_plane_ends_a_log_being_followed(tmp_path: Path) -> None:
    """A client following the log of a job that runs on does not hold the server up:
    stop() returns promptly and the follower's stream ends."""
    running = start_plane(tmp_path / "home")
    job = running.admin.submit("echo up; exec sleep 300", cpus=0.1, memory="16M")
    token = (running.home / "admin.token").read_text().strip()
    following = threading.Event()

    def follow() -> None:
        with running.client(token) as follower:
            try:
                for chunk in follower.logs(job.id, follow=True):
                    if "up" in chunk:
                        following.set()  # the stream is open in the server
            except ApiError:
                pass  # the stream was cut: what a stopping server may do

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert following.wait(30), "the follower never got the job's first line"
    started = time.monotonic()
    try:
        running.plane.stop()
        took = time.monotonic() - started
    finally:
        # The stopped plane left the job running: a new one adopts it and cancels it.
        restarted = ControlPlane(
            Settings(home=running.home, port=free_port(), tick=0.2, nodes=[local_node()])
        )
        restarted.start_background()
        stop_plane(Running(restarted, restarted.url, Client(restarted.url, token), running.home))
    running.admin.close()
    thread.join(10)
    assert took < 8, f"stop() took {took:.1f} s"
    assert not thread.is_alive()


def test_a_function_job_with_two_replicas_succeeds_and_returns_its_value(
    control: Running,
) -> None:
    """Both replicas write the result: they must not trip over one temporary file."""

    def payload(size: int) -> bytes:
        return b"x" * size

    job = control.admin.submit(
        function=payload, args=(50_000_000,), replicas=2, cpus=0.5, memory="1G"
    )
    done = control.admin.wait(job.id, timeout=60)
    assert done.state == "succeeded", done.message
    assert control.admin.result(job.id) == payload(50_000_000)


def test_a_large_log_is_sent_without_being_read_into_memory_whole(control: Running) -> None:
    """A 64 MiB log comes back whole, from an offset too, while the server never holds
    more than a small part of it."""
    job = control.admin.submit(["true"], cpus=0.1, memory="16M")
    assert control.admin.wait(job.id, timeout=30).state == "succeeded"
    log = control.home / "jobs" / str(job.id) / "stdout.log"
    line = b"0123456789abcdef" * 4 + b"\n"
    with log.open("wb") as out:
        for _ in range((64 << 20) // len(line)):
            out.write(line)
    size = log.stat().st_size
    tracemalloc.start()
    try:
        received = sum(len(chunk) for chunk in control.admin.logs(job.id))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < 16 << 20, f"peak {peak >> 20} MiB"
    with httpx.stream(
        "GET",
        f"{control.url}/api/v1/jobs/{job.id}/logs",
        params={"offset": size - len(line)},
        headers=control.admin._http.headers,
    ) as response:
        assert response.read() == line


def test_a_step_that_needs_another_twice_is_a_400_naming_it(control: Running) -> None:
    """Not a server error: the repeated need is named and nothing is created."""
    body = {
        "name": "p",
        "steps": {
            "a": {"command": ["true"], **SMALL},
            "b": {"command": ["true"], "needs": ["a", "a"], **SMALL},
        },
    }
    response = httpx.post(
        f"{control.url}/api/v1/pipelines", json=body, headers=control.admin._http.headers
    )
    assert response.status_code == 400, response.text
    assert "steps.b.needs" in response.json()["detail"]
    assert control.admin.jobs() == []
    assert control.admin.pipelines() == []
