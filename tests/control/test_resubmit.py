"""Resubmitting a job: a new job with the old one's spec, environment included."""

from __future__ import annotations

import pytest

from aios.client import ApiError
from tests.control.control_harness import Running


def test_a_resubmitted_job_runs_the_same_command_with_the_same_environment(
    control: Running,
) -> None:
    admin = control.admin
    first = admin.submit('echo "$GREETING"', env={"GREETING": "hello"}, cpus="500m", retries=2)
    assert admin.wait(first.id, timeout=30).state == "succeeded"
    again = admin.resubmit(first.id)
    assert again.id != first.id
    done = admin.wait(again.id, timeout=30)
    assert done.state == "succeeded"
    assert "".join(admin.logs(again.id)) == "hello\n"
    assert (done.command, done.shell, done.cpus, done.max_retries) == (
        first.command,
        first.shell,
        0.5,
        2,
    )


def test_a_resubmitted_function_returns_its_value_again(control: Running) -> None:
    admin = control.admin
    first = admin.submit(function=lambda x: x * x, args=(7,))  # pickled by value
    assert admin.wait(first.id, timeout=30).state == "succeeded"
    again = admin.resubmit(first.id)
    assert admin.wait(again.id, timeout=30).state == "succeeded"
    assert admin.result(again.id) == 49


def test_another_tenant_cannot_resubmit_a_job_it_cannot_see(control: Running) -> None:
    admin = control.admin
    admin.create_queue("team-a")
    admin.create_queue("team-b")
    mine = admin.submit("true", queue="team-a")
    token = admin.create_token("bea", tenant="team-b")
    with control.client(token) as bea, pytest.raises(ApiError) as caught:
        bea.resubmit(mine.id)
    assert caught.value.status == 404
