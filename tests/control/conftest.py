"""Fixtures of the control-plane tests (helpers live in control_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.control_harness import Running, start_plane, stop_plane


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Running]:
    running = start_plane(tmp_path / "home")
    try:
        yield running
    finally:
        stop_plane(running)
