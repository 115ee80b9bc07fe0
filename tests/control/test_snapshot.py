"""Readers of the reconcile loop take a frozen ClusterView: a copy of the loop's state
at one moment that later cycles do not change, and that shows what runs where."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from tests.control.control_harness import start_plane, stop_plane


def test_a_view_shows_a_running_jobs_gpus_and_does_not_change_after(tmp_path: Path) -> None:
    running = start_plane(tmp_path / "home", db=None)
    try:
        reconciler = running.plane.reconciler
        before = reconciler.view()
        assert before.allocated.gpus == 0
        assert not before.gpu_holders
        job = running.admin.submit("sleep 30", gpus=1, cpus=1, memory="64M")
        deadline = time.monotonic() + 30
        while running.admin.get(job.id).state != "running":
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        during = reconciler.view()
        assert list(during.gpu_holders.values()) == [job.id]
        assert during.allocated.gpus == 1
        assert during.usage["default"]["gpu"] == 1
        assert "default" in during.queue_uids
        # Taken before, it still says what was true before.
        assert before.allocated.gpus == 0 and not before.gpu_holders
        with pytest.raises(dataclasses.FrozenInstanceError):
            during.policy = "fifo"  # type: ignore[misc]
        with pytest.raises(TypeError):
            during.usage["default"]["gpu"] = 0  # type: ignore[index]
        running.admin.cancel(job.id)
        running.admin.wait(job.id, timeout=30)
        after = reconciler.view()
        assert not after.gpu_holders
        assert list(during.gpu_holders.values()) == [job.id]
        assert after.cycles >= during.cycles
    finally:
        stop_plane(running)
