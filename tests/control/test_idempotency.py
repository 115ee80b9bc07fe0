"""Submissions sent twice with one ``Idempotency-Key`` make one job (issue 16, item 6):
a client whose answer was lost sends the request again and gets the first answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from aios.client import ApiError, Client
from aios.control.idempotency import KEEP, Idempotency, recall
from aios.store import IdempotencyRow
from tests.control.control_harness import Running, start_plane, stop_plane


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Running]:
    running = start_plane(tmp_path / "home")
    try:
        yield running
    finally:
        stop_plane(running)


def post(running: Running, path: str, body: object, key: str, token: str = "") -> httpx.Response:
    token = token or (running.home / "admin.token").read_text().strip()
    return httpx.post(
        f"{running.url}/api/v1{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )


JOB = {"command": ["true"], "cpus": 0.1, "memory": "16M"}


def test_the_same_key_twice_answers_the_first_job_and_makes_no_second(plane: Running) -> None:
    first = post(plane, "/jobs", JOB, "k-1")
    again = post(plane, "/jobs", JOB, "k-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert [job.id for job in plane.admin.jobs(limit=10)] == [first.json()["id"]]
    other = post(plane, "/jobs", JOB, "k-2")  # a new key is a new submission
    assert other.json()["id"] != first.json()["id"]


def test_a_key_sent_with_another_request_is_refused_naming_it(plane: Running) -> None:
    assert post(plane, "/jobs", JOB, "k-1").status_code == 201
    changed = post(plane, "/jobs", {**JOB, "command": ["false"]}, "k-1")
    assert changed.status_code == 409
    assert "'k-1' was used for a different request" in changed.json()["detail"]
    assert len(plane.admin.jobs(limit=10)) == 1


def test_a_key_is_its_callers_alone(plane: Running) -> None:
    """Another user's equal key is another key: it neither answers with nor learns of
    the first user's job."""
    plane.admin.create_queue("alpha")
    token = plane.admin.create_token("alice", tenant="alpha")
    mine = post(plane, "/jobs", JOB, "shared")
    theirs = post(plane, "/jobs", {**JOB, "command": ["false"]}, "shared", token)
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["owner"] == "alice"


def test_batches_and_pipelines_are_made_once_per_key(plane: Running) -> None:
    batch = [JOB, JOB]
    first = post(plane, "/jobs/batch", batch, "b-1").json()
    assert post(plane, "/jobs/batch", batch, "b-1").json() == first
    pipeline = {"name": "twice", "steps": {"a": JOB, "b": {**JOB, "needs": ["a"]}}}
    made = post(plane, "/pipelines", pipeline, "p-1")
    assert made.status_code == 201, made.text
    assert post(plane, "/pipelines", pipeline, "p-1").json()["id"] == made.json()["id"]
    assert len(plane.admin.pipelines()) == 1
    assert len(plane.admin.jobs(limit=10)) == 4


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_refused_naming_the_header(plane: Running, key: str) -> None:
    answer = httpx.post(
        f"{plane.url}/api/v1/jobs",
        json=JOB,
        headers={
            b"Authorization": f"Bearer {(plane.home / 'admin.token').read_text().strip()}".encode(),
            b"Idempotency-Key": key.encode(),
        },
    )
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["detail"]
    assert plane.admin.jobs() == []


class LosesFirstAnswer(httpx.BaseTransport):
    """Delivers every request, but drops the connection instead of handing back the
    first answer to a POST: the control plane made the job, the client never heard."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.keys: list[str] = []

    def close(self) -> None:
        self.inner.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers["Idempotency-Key"])
            if len(self.keys) == 1:
                response.read()
                response.close()
                raise httpx.RemoteProtocolError("Server disconnected without sending a response")
        return response


def test_the_sdk_sends_a_lost_submission_again_with_its_key_and_makes_one_job(
    plane: Running,
) -> None:
    transport = LosesFirstAnswer()
    token = (plane.home / "admin.token").read_text().strip()
    client = Client(plane.url, token=token, transport=transport)
    try:
        job = client.submit(["true"], cpus=0.1, memory="16M")
    finally:
        client.close()
    assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
    assert [j.id for j in plane.admin.jobs(limit=10)] == [job.id]
    second = Client(plane.url, token=token, transport=LosesFirstAnswer())
    try:  # each call its own key: the next submission is a new job
        assert second.submit(["true"], cpus=0.1, memory="16M").id != job.id
    finally:
        second.close()


def test_a_key_is_forgotten_after_a_day(plane: Running) -> None:
    made = post(plane, "/jobs", JOB, "old")
    db = plane.plane.db
    with db.sessions() as session:
        row = session.scalars(select(IdempotencyRow)).one()
        idempotency = Idempotency(row.key, row.request)
        assert recall(session, "admin", idempotency, row.created_at + KEEP - 1) is not None
        assert recall(session, "admin", idempotency, row.created_at + KEEP + 1) is None
    assert made.status_code == 201


def test_an_api_error_is_not_retried(plane: Running) -> None:
    """A refusal is an answer: the SDK raises it at once, having sent it once."""
    transport = LosesFirstAnswer()
    transport.keys.append("none lost")  # lose nothing
    token = (plane.home / "admin.token").read_text().strip()
    with (
        Client(plane.url, token=token, transport=transport) as client,
        pytest.raises(ApiError) as refused,
    ):
        client.submit(["true"], queue="nope")
    assert refused.value.status == 400
    assert len(transport.keys) == 2
