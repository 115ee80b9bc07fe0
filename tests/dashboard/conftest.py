"""Fixtures of the dashboard tests: one control plane for the module (two tenants, a
model with a canary deployment), and Debian's chromium driven by Playwright.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``, which
``make test`` installs when missing. Without it the browser tests skip, except where
``CI`` is set, where they fail. Screenshots go to ``$AIOS_SCREENSHOTS`` or a temporary
directory, whose path is printed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.control.control_harness import Running, start_plane, stop_plane
from tests.deployments.deploy_harness import undeploy_all

CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Cluster:
    running: Running
    alpha_token: str
    beta_token: str
    admin_token: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_plane(tmp_path_factory.mktemp("dashboard") / "home", gpus=4)
    admin = running.admin
    admin.create_queue("alpha", quota={"cpu": 2, "gpu": 2}, cohort="lab")
    admin.create_queue("beta", quota={"cpu": 2, "gpu": 2}, cohort="lab")
    cluster = Cluster(
        running,
        admin.create_token("ada", tenant="alpha"),
        admin.create_token("bob", tenant="beta"),
        Path(str(running.plane.admin_token_path)).read_text().strip(),
    )
    try:
        yield cluster
    finally:
        undeploy_all(running)
        stop_plane(running)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the dashboard's browser tests must run in CI, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"no {CHROMIUM}; `make test` installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install 'aios[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (printed, so a run's log says where to look)."""
    chosen = os.environ.get("AIOS_SCREENSHOTS")
    where = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    where.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {where}")
    return where
