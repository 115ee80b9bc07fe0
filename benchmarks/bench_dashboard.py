"""The dashboard's Overview and Jobs pages with a large job history, in a browser.

Usage: python benchmarks/bench_dashboard.py [--jobs 100000] [--baseline 1000]

Fills a fresh control plane's database with finished jobs (spread over the last week,
each with one attempt, a third of them on a GPU), starts it, and measures with
Playwright driving Debian's chromium (/usr/bin/chromium):
- the API's own response times (median of 10) for what the pages fetch: the overview,
  one page of the jobs table (newest first, and sorted by wait), and ``GET /jobs``;
- time to first render: from navigation to the page's data drawn (a logged-in tab);
- time to an update: from submitting a job through the API to its row on the open
  Jobs page, and to the Overview's job count changing, over the live event stream.
The baseline is the same run on a small history (``--baseline`` jobs); the ratio says
what the large history costs.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from aios.control import ControlPlane, Settings
from aios.resources import Node
from aios.store import AttemptRow, Database, JobRow, sqlite_url

CHROMIUM = "/usr/bin/chromium"
WEEK = 7 * 86400.0


def fill(home: Path, count: int, now: float) -> None:
    """``count`` finished jobs with one attempt each, inserted in bulk."""
    db = Database(sqlite_url(home / "aios.db"))
    rng = random.Random(7)
    batch = 10_000
    with db.transaction() as session:
        for first in range(1, count + 1, batch):
            jobs, attempts = [], []
            for job_id in range(first, min(first + batch, count + 1)):
                submitted = now - WEEK + WEEK * job_id / (count + 1)
                started = submitted + rng.expovariate(1 / 30)
                finished = started + rng.expovariate(1 / 120)
                gpus = 1 if job_id % 3 == 0 else 0
                jobs.append(
                    {
                        "id": job_id,
                        "name": f"job-{job_id}",
                        "owner": "admin",
                        "queue": "default",
                        "state": "succeeded",
                        "kind": "batch",
                        "command": ["true"],
                        "shell": False,
                        "env": {},
                        "cpu": 1000,
                        "memory": 1 << 30,
                        "gpus": gpus,
                        "gpu_kind": None,
                        "replicas": 1,
                        "priority": job_id % 5,
                        "preemptible": True,
                        "dependencies": [],
                        "time_limit": None,
                        "grace": 30.0,
                        "max_retries": 0,
                        "retries": 0,
                        "retry_backoff": 1.0,
                        "submitted_at": submitted,
                        "queued_at": submitted,
                        "started_at": started,
                        "finished_at": finished,
                        "attained_service": 0.0,
                        "attempts": 1,
                        "exit_code": 0,
                        "reason": "succeeded",
                        "message": "",
                        "inputs": [],
                        "outputs": [],
                        "cache": True,
                    }
                )
                attempts.append(
                    {
                        "job_id": job_id,
                        "number": 1,
                        "handles": [],
                        "allocations": [{"node": "local", "cores": [0], "gpus": [0] * gpus}],
                        "started_at": started,
                        "finished_at": finished,
                        "exit_code": 0,
                        "reason": "succeeded",
                        "message": "exited with code 0",
                    }
                )
            session.execute(insert(JobRow), jobs)
            session.execute(insert(AttemptRow), attempts)
    db.close()


def api_times(url: str, token: str) -> dict[str, float]:
    """Median milliseconds of 10 calls of each request the two pages make."""
    calls: dict[str, tuple[str, dict[str, str | int]]] = {
        "overview": ("/api/v1/dashboard/overview", {}),
        "jobs page (newest)": ("/api/v1/dashboard/jobs", {"limit": 50}),
        "jobs page (by wait)": ("/api/v1/dashboard/jobs", {"limit": 50, "sort": "wait"}),
        "GET /jobs?limit=50": ("/api/v1/jobs", {"limit": 50}),
    }
    medians = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for label, (path, params) in calls.items():
            times = []
            for _ in range(10):
                began = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                times.append((time.perf_counter() - began) * 1000)
            medians[label] = statistics.median(times)
    return medians


def browser_times(browser: Any, url: str, token: str) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url + "/")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#live.live", timeout=30_000)
    times = {}
    for route, ready in (("overview", "text=Jobs by state"), ("jobs", "#jobs-table tbody tr")):
        samples = []
        for _ in range(3):
            page.goto("about:blank")
            began = time.perf_counter()
            page.goto(f"{url}/#{route}")
            page.wait_for_selector(ready, timeout=30_000)
            samples.append((time.perf_counter() - began) * 1000)
        times[f"first render: {route}"] = statistics.median(samples)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
    for route in ("jobs", "overview"):
        page.goto(f"{url}/#{route}")
        page.wait_for_selector("#live.live", timeout=30_000)
        page.wait_for_selector(".page h1")
        time.sleep(1)  # let the first render settle
        before = page.inner_text(".page")
        began = time.perf_counter()
        job = client.post("/api/v1/jobs", json={"command": ["true"], "cpus": 0.5}).json()
        if route == "jobs":
            page.wait_for_selector(f"tr[data-job-id='{job['id']}']", timeout=30_000)
        else:
            page.wait_for_function(
                "before => document.querySelector('.page').innerText !== before",
                arg=before,
                timeout=30_000,
            )
        times[f"update: {route}"] = (time.perf_counter() - began) * 1000
    client.close()
    page.close()
    return times


def measure(count: int, browser: Any) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        began = time.perf_counter()
        fill(home, count, time.time())
        print(f"  {count:,} jobs inserted in {time.perf_counter() - began:.1f} s")
        node = Node.build("local", cpus=2, memory="8G", gpus=4, gpu_kind="T4")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        plane = ControlPlane(Settings(home=home, port=port, tick=0.2, nodes=[node]))
        plane.start_background()
        try:
            token = Path(str(plane.admin_token_path)).read_text().strip()
            results = api_times(plane.url, token)
            results.update(browser_times(browser, plane.url, token))
        finally:
            plane.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        print(f"baseline: {args.baseline:,} jobs")
        small = measure(args.baseline, browser)
        print(f"measured: {args.jobs:,} jobs")
        large = measure(args.jobs, browser)
        browser.close()
    print(f"\n| what (ms, median) | {args.baseline:,} jobs | {args.jobs:,} jobs | ratio |")
    print("|---|---:|---:|---:|")
    for key in small:
        ratio = large[key] / small[key] if small[key] else float("nan")
        print(f"| {key} | {small[key]:.1f} | {large[key]:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
