"""Jobs through the whole control plane: API → reconcile loop → scheduler → local
executor → database, with real processes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from aios.client import ApiError
from tests.control.control_harness import Running, wait_running


def test_a_submitted_command_runs_and_succeeds_with_its_output_logged(control: Running) -> None:
    """A job runs, succeeds, and its stdout is readable through the API."""
    job = control.admin.submit(["sh", "-c", "echo hello; echo oops >&2"], cpus=1, memory="64M")
    assert job.state in {"queued", "running"}
    done = control.admin.wait(job.id, timeout=20)
    assert done.state == "succeeded"
    assert done.exit_code == 0
    assert done.attempts[0].node == "local"
    assert "".join(control.admin.logs(job.id)) == "hello\n"
    assert "".join(control.admin.logs(job.id, stream="stderr")) == "oops\n"


def test_a_job_sees_its_allocation_in_its_environment(control: Running) -> None:
    """The job's environment names it, its GPUs (CUDA_VISIBLE_DEVICES) and checkpoint
    directory, and its process is pinned to the allocated cores."""
    script = (
        'echo "$AIOS_JOB_ID|$CUDA_VISIBLE_DEVICES|$AIOS_CHECKPOINT_DIR|$GREETING"; '
        "grep Cpus_allowed_list /proc/self/status"
    )
    job = control.admin.submit(script, gpus=1, cpus=1, memory="64M", env={"GREETING": "hi"})
    done = control.admin.wait(job.id, timeout=20)
    assert done.state == "succeeded", done.message
    first, second = "".join(control.admin.logs(job.id)).splitlines()
    job_id, gpus, checkpoint, greeting = first.split("|")
    assert job_id == str(job.id)
    assert gpus == ",".join(map(str, done.attempts[0].gpus[0]))
    assert len(gpus.split(",")) == 1
    assert checkpoint.endswith(f"jobs/{job.id}/checkpoint")
    assert greeting == "hi"
    assert second.split(":")[1].strip() == str(done.attempts[0].cores[0][0])


def test_a_failing_job_is_retried_with_backoff_until_it_succeeds(control: Running) -> None:
    """Each failed attempt is recorded with its exit code; the retry that succeeds ends
    the job as succeeded."""
    script = (
        'n=$(cat "$AIOS_CHECKPOINT_DIR/n" 2>/dev/null || echo 0); n=$((n+1)); '
        'echo $n > "$AIOS_CHECKPOINT_DIR/n"; [ $n -ge 3 ] || exit 7'
    )
    job = control.admin.submit(script, retries=3, retry_backoff=0.05, memory="64M")
    done = control.admin.wait(job.id, timeout=30)
    assert done.state == "succeeded"
    assert done.retries == 2
    assert [(a.reason, a.exit_code) for a in done.attempts] == [
        ("failed", 7),
        ("failed", 7),
        ("succeeded", 0),
    ]
    kinds = [e.kind for e in control.admin.events(job.id)]
    assert kinds.count("retrying") == 2


def test_a_job_that_keeps_failing_ends_failed_after_its_retries(control: Running) -> None:
    job = control.admin.submit("exit 3", retries=1, retry_backoff=0, memory="64M")
    done = control.admin.wait(job.id, timeout=20)
    assert done.state == "failed"
    assert done.exit_code == 3
    assert len(done.attempts) == 2


def test_cancelling_a_running_job_stops_its_process_group(control: Running) -> None:
    """Cancel sends SIGTERM to the job (and its children) and records it as cancelled."""
    job = control.admin.submit("sleep 60 & sleep 60; wait", grace=5, memory="64M")
    wait_running(control.admin, job.id)
    control.admin.cancel(job.id)
    done = control.admin.wait(job.id, timeout=15)
    assert done.state == "cancelled"
    assert done.attempts[-1].reason == "cancelled"


def test_a_job_past_its_time_limit_is_stopped(control: Running) -> None:
    job = control.admin.submit(["sleep", "30"], time_limit=0.5, grace=1, memory="64M")
    done = control.admin.wait(job.id, timeout=20)
    assert done.state == "failed"
    assert done.reason == "time_limit"


def test_a_child_of_a_failed_job_is_upstream_failed(control: Running) -> None:
    parent = control.admin.submit("exit 1", memory="64M")
    child = control.admin.submit(["true"], after=[parent.id], memory="64M")
    assert control.admin.wait(child.id, timeout=20).state == "upstream_failed"
    assert control.admin.get(parent.id).state == "failed"


def test_a_child_runs_after_its_parent_succeeds(control: Running) -> None:
    parent = control.admin.submit("sleep 0.3", memory="64M")
    child = control.admin.submit(["true"], after=[parent.id], memory="64M")
    done = control.admin.wait(child.id, timeout=20)
    assert done.state == "succeeded"
    parent_done = control.admin.get(parent.id)
    assert parent_done.finished_at is not None and done.started_at is not None
    assert done.started_at >= parent_done.finished_at


def test_a_python_function_runs_as_a_job_and_returns_its_value(control: Running) -> None:
    import aios

    @aios.job(cpus=1, mem="256M", client=control.admin)
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3  # still an ordinary call
    assert add.submit(20, 22).result(timeout=30) == 42


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"command": ["true"], "cpus": -1}, "cpu"),
        ({"command": ["true"], "memory": "lots"}, "memory"),
        ({"command": ["true"], "colour": "blue"}, "colour"),
        ({"command": []}, "command"),
        ({}, "command"),
        ({"command": ["true"], "gpus": -2}, "gpus"),
        ({"command": ["true"], "time_limit": "soon"}, "duration"),
    ],
)
def test_malformed_jobs_are_refused_with_a_422_naming_the_field(
    control: Running, body: dict[str, object], fragment: str
) -> None:
    response = httpx.post(
        f"{control.url}/api/v1/jobs",
        json=body,
        headers={"Authorization": f"Bearer {_token(control)}"},
    )
    assert response.status_code == 422
    assert fragment in response.text
    assert control.admin.jobs(limit=10) == []


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"cpus": 512}, 400, "more than any node"),
        ({"gpus": 3}, 400, "more than any node"),
        ({"gpus": 1, "gpu_kind": "H100"}, 400, "more than any node"),
        ({"queue": "nowhere"}, 400, "no queue named 'nowhere'"),
        ({"after": [9999]}, 400, "no job 9999"),
    ],
)
def test_jobs_no_one_could_run_are_refused_and_nothing_is_created(
    control: Running, kwargs: dict[str, object], status: int, fragment: str
) -> None:
    with pytest.raises(ApiError) as info:
        control.admin.submit(["true"], **kwargs)  # type: ignore[arg-type]
    assert info.value.status == status
    assert fragment in str(info.value)
    assert control.admin.jobs(limit=10) == []


def test_requests_without_a_valid_token_get_401(control: Running) -> None:
    assert httpx.get(f"{control.url}/api/v1/jobs").status_code == 401
    bad = httpx.get(f"{control.url}/api/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_a_tenant_sees_and_touches_only_its_own_queue(control: Running) -> None:
    control.admin.create_queue("red")
    control.admin.create_queue("blue")
    red_token = control.admin.create_token("ann", tenant="red")
    blue_token = control.admin.create_token("bob", tenant="blue")
    with control.client(red_token) as red, control.client(blue_token) as blue:
        mine = red.submit(["true"], memory="64M")
        assert mine.queue == "red"
        red.wait(mine.id, timeout=20)
        with pytest.raises(ApiError) as info:
            blue.get(mine.id)
        assert info.value.status == 404
        assert blue.jobs() == []
        with pytest.raises(ApiError) as refused:
            blue.submit(["true"], queue="red", memory="64M")
        assert refused.value.status == 403
        with pytest.raises(ApiError) as admin_only:
            blue.create_queue("green")
        assert admin_only.value.status == 403
        assert [q.name for q in blue.queues()] == ["blue"]
    assert [j.id for j in control.admin.jobs()] == [mine.id]


def test_queues_are_created_updated_and_listed_with_usage(control: Running) -> None:
    created = control.admin.create_queue("team", quota={"cpu": 1, "memory": "1G"}, weight=2)
    assert created.quota == {"cpu": 1000, "memory": 1 << 30}
    updated = control.admin.update_queue("team", quota={"cpu": 2, "gpu": 1})
    assert updated.quota == {"cpu": 2000, "gpu": 1}
    assert updated.weight == 2
    with pytest.raises(ApiError) as info:
        control.admin.create_queue("team")
    assert info.value.status == 409
    names = [q.name for q in control.admin.queues()]
    assert names == ["default", "team"]


def test_nodes_report_capacity_and_which_job_holds_each_gpu(control: Running) -> None:
    job = control.admin.submit(["sleep", "5"], gpus=2, memory="64M")
    wait_running(control.admin, job.id)
    (node,) = control.admin.nodes()
    assert node.name == "local"
    assert node.allocatable["gpu"] == 2
    assert node.free["gpu"] == 0
    assert {gpu.job_id for gpu in node.gpus} == {job.id}
    control.admin.cancel(job.id)
    control.admin.wait(job.id, timeout=15)


def test_metrics_expose_jobs_resources_and_cycle_time(control: Running) -> None:
    control.admin.wait(control.admin.submit(["true"], memory="64M").id, timeout=20)
    admin = {"Authorization": f"Bearer {_token(control)}"}
    text = httpx.get(f"{control.url}/metrics", headers=admin).text
    assert 'aios_jobs{queue="default",state="succeeded"} 1.0' in text
    assert 'aios_resource_allocatable{resource="gpu"} 2.0' in text
    assert "aios_queue_wait_seconds_count" in text
    assert "aios_scheduler_cycle_seconds_count" in text


def _token(control: Running) -> str:
    assert control.plane.admin_token_path is not None
    return Path(control.plane.admin_token_path).read_text().strip()


def test_a_quota_naming_an_unknown_resource_is_refused(control: Running) -> None:
    """`gpus` instead of `gpu` would limit nothing; the error names it and what is known."""
    with pytest.raises(ApiError) as info:
        control.admin.create_queue("typo", quota={"gpus": 2})
    assert info.value.status == 400
    assert "'gpus'" in str(info.value) and "gpu" in str(info.value)
    assert "typo" not in [q.name for q in control.admin.queues()]


def test_a_function_result_is_served_only_once_the_job_succeeded(control: Running) -> None:
    with pytest.raises(ApiError) as info:
        control.admin.result(control.admin.submit(["true"], memory="64M").id)
    assert info.value.status == 404
