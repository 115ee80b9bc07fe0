"""Every executor test runs twice: replicas as plain process groups, and sandboxed (as
the control plane runs them) where this machine can make sandboxes."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.executors.sandbox import Sandbox, SandboxUnavailable
from tests.executors.jobdir import Jobs


@functools.cache
def _sandbox() -> Sandbox | SandboxUnavailable:
    try:
        return Sandbox.detect()
    except SandboxUnavailable as exc:
        return exc


def machine_sandbox() -> Sandbox:
    """This machine's sandbox; skips the test where none can be made (CI installs
    bubblewrap, so there it never skips)."""
    found = _sandbox()
    if isinstance(found, SandboxUnavailable):
        pytest.skip(f"no sandbox here: {found}")
    return found


@pytest.fixture(params=["plain", "sandboxed"])
def jobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Jobs]:
    sandbox = machine_sandbox() if request.param == "sandboxed" else None
    workdir = tmp_path / "job"
    workdir.mkdir()
    with Jobs(workdir, sandbox) as runner:
        yield runner
