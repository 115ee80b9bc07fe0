"""The API fuzzed from its own OpenAPI schema (schemathesis): whatever a client sends,
the answer is never a 5xx, on SQLite and on PostgreSQL alike.

The jobs the fuzzer submits are arbitrary strings, so they are not run: the control
plane here uses an executor that records each launch and reports it succeeded at once.
Everything else (API, validation, database, reconcile loop, scheduler) is the real one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from aios.control import ControlPlane, Settings
from aios.executors.base import ExitReason, Handle, LaunchSpec, ProcessExit, StopReason
from aios.resources import Node
from tests.pg_server import PostgresServer


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


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """A control plane on SQLite (in its home) or on a fresh PostgreSQL database: the
    two answer bad input alike, though PostgreSQL's integers are 32-bit and its text
    columns refuse NUL."""
    home = tmp_path_factory.mktemp("fuzz")
    db = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        db = server.create_migrated_database()
    node = Node.build("local", cpus=len(os.sched_getaffinity(0)), memory="8G", gpus=2)
    control = ControlPlane(
        Settings(
            home=home,
            db=db,
            tick=0.05,
            nodes=[node],
            executor=DryRunExecutor(),
            allowed_hosts=["testserver"],  # the Host schemathesis's ASGI client sends
        )
    )
    control.start()
    yield control
    control.stop()


def _admin(plane: ControlPlane) -> dict[str, str]:
    assert plane.admin_token_path is not None
    return {"Authorization": f"Bearer {Path(plane.admin_token_path).read_text().strip()}"}


def _request(plane: ControlPlane, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """``method path`` (under /api/v1) sent by the admin straight to the app."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=plane.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.request(method, f"/api/v1{path}", headers=_admin(plane), **kwargs)

    return asyncio.run(send())


BIG = 2**40
"""An id past PostgreSQL's 32-bit integers (SQLite's are 64-bit)."""
COMMAND = {"command": ["true"], "memory": "64M"}

REFUSED = [
    ("GET", f"/jobs/{BIG}", None, "job_id"),
    ("GET", f"/jobs/{BIG}/events", None, "job_id"),
    ("GET", f"/jobs/{BIG}/logs", None, "job_id"),
    ("GET", f"/jobs/{BIG}/result", None, "job_id"),
    ("POST", f"/jobs/{BIG}/cancel", None, "job_id"),
    ("GET", f"/jobs/1/events?since={BIG}", None, "since"),
    ("GET", f"/events?since={BIG}", None, "since"),
    ("GET", f"/jobs?pipeline={BIG}", None, "pipeline"),
    ("GET", f"/pipelines/{BIG}", None, "pipeline_id"),
    ("POST", f"/pipelines/{BIG}/cancel", None, "pipeline_id"),
    ("POST", "/jobs", {**COMMAND, "after": [BIG]}, "after"),
    ("POST", "/jobs/batch", [{**COMMAND, "after": [BIG]}], "after"),
    ("POST", "/jobs", {**COMMAND, "name": "a\x00b"}, "name"),
    ("GET", "/jobs?queue=%00", None, "queue"),
    ("GET", "/jobs?state=%00", None, "state"),
    ("GET", "/jobs?state=pending", None, "state"),
    ("GET", "/jobs?owner=%00", None, "owner"),
    ("PATCH", "/queues/%00", {"weight": 2}, "name"),
    ("GET", f"/models/m/versions/{BIG}", None, "ref"),
    ("GET", f"/models/m/versions/{BIG}/artifact", None, "ref"),
    ("PATCH", f"/models/m/versions/{BIG}", {"description": "x"}, "ref"),
    ("PATCH", "/models/m/versions/1", {"description": "a\x00b"}, "description"),
    ("PATCH", "/models/m/versions/1", {"tags": {"t": "a\x00b"}}, "tags"),
    ("DELETE", f"/models/m/versions/{BIG}", None, "version"),
    ("PUT", "/models/m/aliases/prod", {"version": BIG}, "version"),
    ("POST", "/deployments", {"model": f"m@{BIG}"}, "model"),
    ("POST", "/deployments", {"model": "m@1", "canary": f"m@{BIG}:10"}, "canary"),
    ("PUT", "/deployments/d", {"model": f"m@{BIG}"}, "model"),
    ("GET", f"/lineage/job/{BIG}", None, "ref"),
    ("GET", f"/lineage/model/m@{BIG}", None, "ref"),
    ("GET", f"/lineage/dataset/d@{BIG}", None, "ref"),
    ("GET", "/lineage/model/a%00@1", None, "ref"),
    ("GET", "/lineage/model/m@%00", None, "ref"),
    ("GET", "/lineage/job/%C2%B2", None, "ref"),  # a digit to str.isdigit, not to int()
    ("GET", "/dashboard/jobs?name=a%00b", None, "name"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"), REFUSED, ids=[f"{m} {p}" for m, p, _, _ in REFUSED]
)
def test_ids_past_32_bits_and_nul_bytes_are_refused_naming_the_field(
    plane: ControlPlane, method: str, path: str, body: Any, field: str
) -> None:
    """The requests the fuzzer found answering 500 on PostgreSQL ("integer out of
    range", "cannot contain NUL"; and a lineage ref of a digit that ``int`` cannot read,
    on both): refused with a 422 that names the field at fault, before any query, on
    either database."""
    response = _request(plane, method, path, json=body)
    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["detail"]), response.text


def test_a_listing_offset_past_32_bits_is_an_empty_page(plane: ControlPlane) -> None:
    """A row offset is no id: past 32 bits it is still accepted, and lists nothing."""
    response = _request(plane, "GET", f"/jobs?offset={BIG}")
    assert response.status_code == 200, response.text
    assert response.json() == []


def test_a_model_description_with_nul_is_refused(plane: ControlPlane) -> None:
    """A registration whose description holds NUL is refused naming the field (a text
    column of PostgreSQL cannot hold it), before the upload is stored."""
    spec = '{"format": "python", "description": "a\\u0000b"}'
    response = _request(
        plane,
        "POST",
        "/models/m/versions",
        data={"spec": spec},
        files={"artifact": ("model.py", b"x = 1\n")},
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("spec.description: ")


def test_no_request_gets_a_server_error(plane: ControlPlane) -> None:
    """Every operation of the schema, with bounded generated requests (valid and
    not), answers below 500."""
    headers = _admin(plane)
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
