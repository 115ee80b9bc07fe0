"""Isolation and preemption through the whole control plane."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.control_harness import CORES, Running, start_plane, stop_plane

HOG = f'{sys.executable} -c "b=[]\nwhile True: b.append(bytearray(16 << 20))"'


def test_a_job_that_eats_memory_is_killed_at_its_limit_and_others_go_on(
    control: Running,
) -> None:
    """The hog ends as failed with reason oom_killed; a job beside it succeeds, and the
    control plane keeps answering."""
    hog = control.admin.submit(HOG, memory="128M", cpus=1)
    neighbour = control.admin.submit("sleep 0.5; echo fine", memory="64M", cpus=1)
    done = control.admin.wait(hog.id, timeout=60)
    assert done.state == "failed"
    assert done.reason == "oom_killed", done.message
    assert control.admin.wait(neighbour.id, timeout=30).state == "succeeded"
    assert "".join(control.admin.logs(neighbour.id)) == "fine\n"


@pytest.fixture
def priority_control(tmp_path: Path) -> Iterator[Running]:
    running = start_plane(tmp_path / "home", policy="priority")
    try:
        yield running
    finally:
        stop_plane(running)


def test_a_preempted_job_is_requeued_and_finds_its_checkpoint_again(
    priority_control: Running, tmp_path: Path
) -> None:
    """Low-priority jobs fill every core; a high-priority job preempts one (SIGTERM, it
    saves a checkpoint), runs, and the victim restarts from its checkpoint."""
    control = priority_control
    script = (
        'f="$AIOS_CHECKPOINT_DIR/step"; '
        'if [ -e "$f" ]; then echo "resumed from $(cat $f)"; exit 0; fi; '
        "trap 'echo 41 > \"$f\"; exit 143' TERM; "
        "echo ready; while true; do sleep 0.05; done"
    )
    low = [
        control.admin.submit(script, priority=0, cpus=1, memory="64M", grace=10)
        for _ in range(CORES)
    ]
    deadline = time.monotonic() + 20
    # Running and past `trap`: a SIGTERM before it would kill the shell unsaved.
    while any("ready" not in "".join(control.admin.logs(job.id)) for job in low):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    high = control.admin.submit(["echo", "urgent"], priority=10, cpus=1, memory="64M")
    assert control.admin.wait(high.id, timeout=30).state == "succeeded"
    victims = [job for job in (control.admin.get(j.id) for j in low) if len(job.attempts) > 1]
    assert len(victims) == 1
    victim = victims[0]
    assert victim.attempts[0].reason == "preempted"
    finished = control.admin.wait(victim.id, timeout=30)
    assert finished.state == "succeeded"
    assert "resumed from 41" in "".join(control.admin.logs(victim.id))
    kinds = [event.kind for event in control.admin.events(victim.id)]
    assert "requeued" in kinds
    for job in low:
        if job.id != victim.id:
            control.admin.cancel(job.id)
