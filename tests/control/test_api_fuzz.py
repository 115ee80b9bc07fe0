"""The API fuzzed from its own OpenAPI schema (schemathesis): whatever a client sends,
the answer is never a 5xx.

The jobs the fuzzer submits are arbitrary strings, so they are not run: the control
plane here uses an executor that records each launch and reports it succeeded at once.
Everything else (API, validation, database, reconcile loop, scheduler) is the real one.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from aios.control import ControlPlane, Settings
from aios.executors.base import ExitReason, Handle, LaunchSpec, ProcessExit, StopReason
from aios.resources import Node


class DryRunExecutor:
    """Launches nothing; every replica 'exits' successfully on the next poll."""

    def __init__(self) -> None:
        self._ended: list[ProcessExit] = []
        self._pids = itertools.count(1_000_000)

    def launch(self, spec: LaunchSpec) -> Handle:
        self._ended.append(
            ProcessExit(spec.job_id, spec.attempt, spec.replica, 0, ExitReason.SUCCEEDED)
        )
        pid = next(self._pids)
        return Handle(spec.job_id, spec.attempt, spec.replica, pid, pid, time.time())

    def stop(self, handle: Handle, reason: StopReason, grace: float) -> None:
        pass

    def adopt(self, handle: Handle, spec: LaunchSpec) -> bool:
        return False

    def find(self, spec: LaunchSpec) -> Handle | None:
        return None

    def poll(self) -> list[ProcessExit]:
        ended, self._ended = self._ended, []
        return ended

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    home = tmp_path_factory.mktemp("fuzz")
    node = Node.build("local", cpus=len(os.sched_getaffinity(0)), memory="8G", gpus=2)
    control = ControlPlane(Settings(home=home, tick=0.05, nodes=[node], executor=DryRunExecutor()))
    control.start()
    yield control
    control.stop()


def test_no_request_gets_a_server_error(plane: ControlPlane) -> None:
    """Every operation of the schema, with bounded generated requests (valid and
    not), answers below 500."""
    assert plane.admin_token_path is not None
    headers = {"Authorization": f"Bearer {Path(plane.admin_token_path).read_text().strip()}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", plane.app)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=int(os.environ.get("AIOS_FUZZ_EXAMPLES", "25")),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def call(case: schemathesis.Case[Any]) -> None:
            if case.query and str(case.query.get("follow")).lower() in {"true", "1"}:
                case.query["follow"] = "false"  # a job that never ends is followed forever
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        call()
