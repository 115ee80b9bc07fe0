"""The dashboard's server side without a browser: stream tickets, the live event
stream, the paged jobs table, the overview and timeline numbers, the static files, and
who may call what."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from aios.control.auth import Principal
from aios.dashboard.overview import Held, allocation_history
from aios.dashboard.serving import RateMeter, quantile
from aios.dashboard.tickets import StreamTickets
from aios.errors import InvalidInput
from tests.dashboard.conftest import Cluster

ADA = Principal("ada", "alpha", False)


def http(cluster: Cluster, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=cluster.running.url + "/api/v1", headers=headers, timeout=30)


def test_a_ticket_names_its_user_until_it_expires() -> None:
    now = [1000.0]
    tickets = StreamTickets(lifetime=60, clock=lambda: now[0])
    ticket = tickets.issue(ADA)
    assert tickets.redeem(ticket) == ADA
    now[0] += 61
    with pytest.raises(InvalidInput, match="expired"):
        tickets.redeem(ticket)


def test_a_forged_or_foreign_ticket_is_refused() -> None:
    tickets = StreamTickets()
    body, _, signature = tickets.issue(ADA).partition(".")
    admin_body = body.replace(body, StreamTickets().issue(Principal("x", None, True)).split(".")[0])
    foreign = StreamTickets().issue(ADA)
    for forged in (f"{admin_body}.{signature}", foreign, "garbage", "", "0.\x80", f"{body}.é"):
        with pytest.raises(InvalidInput, match="ticket"):
            tickets.redeem(forged)


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.25, 1.5), (0.5, 2.0), (0.95, 2.9), (1.0, 3.0)],
)
def test_quantile_interpolates_within_a_bucket(q: float, expected: float) -> None:
    """Ten observations, five in (1, 2] and five in (2, 3], read as Prometheus'
    histogram_quantile reads them: evenly spread within each bucket."""
    buckets = [(1.0, 0.0), (2.0, 5.0), (3.0, 10.0), (float("inf"), 10.0)]
    assert quantile(q, buckets) == pytest.approx(expected)


def test_quantile_of_an_empty_histogram_is_unknown() -> None:
    assert quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_a_rate_needs_two_readings() -> None:
    meter = RateMeter()
    assert meter.rate("d", 10, 100.0) is None
    assert meter.rate("d", 30, 110.0) == pytest.approx(2.0)
    assert meter.rate("d", 5, 120.0) is None  # the counter restarted


def test_allocation_history_counts_what_was_held_at_each_instant() -> None:
    held = [Held(0, 10, 1000, 1, 1), Held(5, None, 2000, 2, 2)]
    samples = allocation_history(held, 0, 20, points=5)  # at 0, 5, 10, 15, 20
    assert [s.gpu for s in samples] == [1, 3, 2, 2, 2]
    assert [s.cpu for s in samples] == [1000, 3000, 2000, 2000, 2000]


def test_the_page_and_its_files_are_served_with_a_strict_policy(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.running.url) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="/ui/app.js">' in page.text
        for name in ("app.js", "api.js", "dom.js", "charts.js", "jobs.js", "style.css"):
            assert client.get(f"/ui/{name}").status_code == 200, name
        assert client.get("/ui/../server.py").status_code == 404
        assert client.get("/ui/nothing.js").status_code == 404
        assert client.get("/v2/health/live").json() == {"live": True}  # the gateway still


def test_the_jobs_table_pages_sorts_and_filters_on_the_server(cluster: Cluster) -> None:
    admin = cluster.running.admin
    made = [
        admin.submit(["true"], name=f"table-{i}", queue="beta", cpus=0.5, priority=i)
        for i in range(5)
    ]
    for job in made:
        admin.wait(job.id, timeout=30)
    with http(cluster, cluster.admin_token) as api:
        page = api.get("/dashboard/jobs", params={"name": "table-", "limit": 2}).json()
        assert page["total"] == 5
        assert [j["id"] for j in page["jobs"]] == [made[4].id, made[3].id]
        second = api.get(
            "/dashboard/jobs", params={"name": "table-", "limit": 2, "offset": 2}
        ).json()
        assert [j["id"] for j in second["jobs"]] == [made[2].id, made[1].id]
        by_priority = api.get(
            "/dashboard/jobs", params={"name": "table-", "sort": "priority", "order": "asc"}
        ).json()
        assert [j["priority"] for j in by_priority["jobs"]] == [0, 1, 2, 3, 4]
        bad = api.get("/dashboard/jobs", params={"sort": "secret"})
        assert bad.status_code == 422 and "sort" in bad.text
    with http(cluster, cluster.alpha_token) as api:
        assert api.get("/dashboard/jobs", params={"name": "table-"}).json()["total"] == 0


def test_the_stream_sends_the_callers_new_events_only(cluster: Cluster) -> None:
    """Ada's stream carries her job's events and none of beta's."""
    with http(cluster, cluster.alpha_token) as api:
        ticket = api.post("/stream/ticket").json()["ticket"]
        with api.stream("GET", "/stream", params={"ticket": ticket}) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: ready"
            next(lines), next(lines)  # its data, the blank line
            cluster.running.admin.submit(["true"], name="not-ada", queue="beta", cpus=0.5)
            mine = api.post(
                "/jobs", json={"command": ["true"], "name": "ada-live", "cpus": 0.5}
            ).json()
            seen: list[dict[str, object]] = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(e["kind"] == "succeeded" for e in seen):
                line = next(lines)
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
    assert seen and {e["job_id"] for e in seen} == {mine["id"]}


def test_the_stream_resumes_after_a_numeric_last_event_id_only(cluster: Cluster) -> None:
    """A reconnecting browser's ``Last-Event-ID`` is where the stream resumes; one that
    is not an ASCII number (``²`` passes ``str.isdigit``) is ignored, not a 500."""
    with http(cluster, cluster.alpha_token) as api:
        for resume in (b"3", "\u00b2".encode("latin-1")):
            ticket = api.post("/stream/ticket").json()["ticket"]
            params = {"ticket": ticket}
            headers = {b"Last-Event-ID": resume}
            with api.stream("GET", "/stream", params=params, headers=headers) as stream:
                assert stream.status_code == 200, resume
                lines = stream.iter_lines()
                assert next(lines) == "event: ready"
                since = json.loads(next(lines).removeprefix("data: "))["since"]
            if resume == b"3":
                assert since == 3
            else:  # from now on: the latest event's id
                assert isinstance(since, int)


def test_the_stream_refuses_a_missing_or_bad_ticket(cluster: Cluster) -> None:
    with http(cluster, None) as api:
        assert api.get("/stream").status_code == 422
        assert api.get("/stream", params={"ticket": "x.y"}).status_code == 400
        assert api.post("/stream/ticket").status_code == 401


def test_overview_and_timeline_follow_the_tenant_rules(cluster: Cluster) -> None:
    admin = cluster.running.admin
    job = admin.submit(["true"], name="gpu-beta", queue="beta", cpus=0.5, gpus=1)
    admin.wait(job.id, timeout=30)
    with http(cluster, cluster.admin_token) as api:
        overview = api.get("/dashboard/overview").json()
        assert {k["kind"]: k["total"] for k in overview["gpu_kinds"]} == {"T4": 4}
        assert overview["jobs_by_state"]["succeeded"] >= 1
        assert overview["scheduler"]["policy"] == "drf"
        bars = api.get("/dashboard/timeline").json()["bars"]
        assert any(b["job_id"] == job.id for b in bars)
    with http(cluster, cluster.alpha_token) as api:
        overview = api.get("/dashboard/overview").json()
        assert [q["name"] for q in overview["queues"]] == ["alpha"]
        bars = api.get("/dashboard/timeline").json()["bars"]
        assert all(b["queue"] == "alpha" for b in bars)
        assert api.get("/dashboard/timeline", params={"start": 10, "end": 5}).status_code == 400


def test_the_simulator_is_for_admins(cluster: Cluster) -> None:
    with http(cluster, cluster.alpha_token) as api:
        assert api.get("/simulator").status_code == 403
    with http(cluster, cluster.admin_token) as api:
        body = {"policies": ["fifo", "drf"], "limit": 40, "nodes": 4, "gpus_per_node": 8}
        answer = api.post("/simulator/run", json=body).json()
        assert [r["policy"] for r in answer["results"]] == ["fifo", "drf"]
        assert answer["results"][0]["jct_cdf"][-1][1] == 1.0
        unknown = api.post("/simulator/run", json={**body, "policies": ["nope"]})
        assert unknown.status_code == 400 and "nope" in unknown.text


def test_datasets_are_empty_without_a_repository(cluster: Cluster) -> None:
    with http(cluster, cluster.alpha_token) as api:
        assert api.get("/datasets").json() == []
        missing = api.get("/datasets/digits")
        assert missing.status_code == 400 and "no data repository" in missing.text


def test_the_package_exports_its_routers() -> None:
    import aios.dashboard

    assert sorted(aios.dashboard.__all__) == ["StreamTickets", "dashboard_router", "page_router"]


def test_the_simulator_replays_the_clusters_own_history(cluster: Cluster) -> None:
    for _ in range(2):
        job = cluster.running.admin.submit("true")
        assert cluster.running.admin.wait(job.id, timeout=30).state == "succeeded"
    with http(cluster, cluster.admin_token) as api:
        assert "history" in api.get("/simulator").json()["traces"]
        history = api.get("/history/trace").json()
        body = {"trace": "history", "policies": ["fifo", "las"], "limit": 1000}
        answer = api.post("/simulator/run", json=body).json()
    assert answer["trace"] == "cluster's own history"
    assert answer["jobs"] == len(history["jobs"]) >= 2  # the same jobs the CLI replays
    assert answer["nodes"] == len(history["nodes"])
    assert [r["policy"] for r in answer["results"]] == ["fifo", "las"]
