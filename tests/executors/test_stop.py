"""Stopping replicas: SIGTERM to the group, SIGKILL after the grace, time limits, and
the exit reported with the reason of the stop."""

from __future__ import annotations

import sys
import time

from aios.executors import ExitReason, StopReason
from tests.executors.jobdir import Jobs

CLEAN_UP_ON_TERM = """
import pathlib, signal, sys, time
def on_term(signum, frame):
    time.sleep(0.1)
    pathlib.Path("cleaned").write_text("yes")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
pathlib.Path("ready").touch()
time.sleep(30)
"""

IGNORE_TERM_WITH_GRANDCHILD = """
import pathlib, signal, subprocess, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "30"], restore_signals=True)
pathlib.Path("grandchild").write_text(str(child.pid))
time.sleep(30)
"""


def test_term_handler_is_honoured(jobs: Jobs) -> None:
    """A replica that cleans up on SIGTERM and exits 0 is reported with the stop's
    reason and its own exit code, after its cleanup ran."""
    executor = jobs.executor()
    handle, _ = jobs.launch(executor, [sys.executable, "-c", CLEAN_UP_ON_TERM])
    jobs.wait_for((jobs.workdir / "ready").exists)
    executor.stop(handle, StopReason.CANCELLED, grace=10)
    ended = jobs.wait_one(executor)
    assert ended.reason is ExitReason.CANCELLED
    assert ended.exit_code == 0
    assert (jobs.workdir / "cleaned").read_text() == "yes"
    assert jobs.exit_file().read_text() == "0 0\n"  # its status, and no OOM kill


def test_default_term_disposition_kills_at_once(jobs: Jobs) -> None:
    """The wrapper survives SIGTERM but the command keeps the default disposition, so
    a command without a handler dies at once, long before its grace ends."""
    executor = jobs.executor()
    handle, _ = jobs.launch(executor, ["sleep", "30"])
    started = time.monotonic()
    executor.stop(handle, StopReason.PREEMPTED, grace=30)
    ended = jobs.wait_one(executor, timeout=5)
    assert time.monotonic() - started < 5
    assert ended.reason is ExitReason.PREEMPTED
    assert ended.exit_code == 143
    assert "preempted; killed by SIGTERM" in ended.message


def test_stop_right_after_launch_is_not_lost(jobs: Jobs) -> None:
    """A stop that reaches the wrapper before it has started the command still stops
    the command: it is never started, or it gets the signal."""
    executor = jobs.executor()
    started = time.monotonic()
    for _ in range(20):
        handle, _ = jobs.launch(executor, ["sleep", "30"])
        executor.stop(handle, StopReason.CANCELLED, grace=30)
    exits = jobs.wait(executor, 20, timeout=10)
    assert time.monotonic() - started < 10
    assert {(e.reason, e.exit_code) for e in exits} == {(ExitReason.CANCELLED, 143)}
    assert not list(jobs.exit_file().parent.glob("*.stop"))


def test_sigkill_after_grace_kills_the_whole_group(jobs: Jobs) -> None:
    """A replica ignoring SIGTERM is killed with its group, grandchild included, once
    the grace has passed."""
    executor = jobs.executor()
    handle, _ = jobs.launch(executor, [sys.executable, "-c", IGNORE_TERM_WITH_GRANDCHILD])
    marker = jobs.workdir / "grandchild"
    jobs.wait_for(lambda: marker.exists() and marker.read_text() != "")
    grandchild = int(marker.read_text())
    started = time.monotonic()
    executor.stop(handle, StopReason.CANCELLED, grace=0.3)
    ended = jobs.wait_one(executor)
    assert time.monotonic() - started >= 0.3
    assert ended.reason is ExitReason.CANCELLED
    assert ended.exit_code == 137
    assert "SIGKILL after a grace of 0.3 s" in ended.message
    if jobs.sandboxed:  # the pid it wrote is its sandbox's: the group holds the grandchild
        jobs.wait_for(lambda: jobs.group_gone(handle.pgid), timeout=5)
    else:
        jobs.wait_for(lambda: jobs.gone(grandchild), timeout=5)


def test_leftover_processes_die_with_the_replica(jobs: Jobs) -> None:
    """When the command exits, what it left running in its group is killed."""
    executor = jobs.executor()
    handle, _ = jobs.launch(executor, ["sleep 30 & echo $! > leftover"], shell=True)
    ended = jobs.wait_one(executor)
    assert ended.reason is ExitReason.SUCCEEDED
    leftover = int((jobs.workdir / "leftover").read_text())
    if jobs.sandboxed:  # the pid it wrote is its sandbox's: the group holds the leftover
        jobs.wait_for(lambda: jobs.group_gone(handle.pgid), timeout=5)
    else:
        jobs.wait_for(lambda: jobs.gone(leftover), timeout=5)


def test_time_limit_stops_the_replica(jobs: Jobs) -> None:
    """Past its time limit a replica gets SIGTERM and is reported as TIME_LIMIT."""
    executor = jobs.executor()
    started = time.monotonic()
    jobs.launch(executor, ["sleep", "30"], time_limit=0.3, grace=5)
    ended = jobs.wait_one(executor, timeout=5)
    assert 0.3 <= time.monotonic() - started < 3
    assert ended.reason is ExitReason.TIME_LIMIT
    assert ended.exit_code == 143
    assert "time limit of 0.3 s" in ended.message


def test_stop_with_no_grace_kills_at_once(jobs: Jobs) -> None:
    """grace=0 sends SIGKILL straight away."""
    executor = jobs.executor()
    handle, _ = jobs.launch(executor, [sys.executable, "-c", IGNORE_TERM_WITH_GRANDCHILD])
    executor.stop(handle, StopReason.PREEMPTED, grace=0)
    ended = jobs.wait_one(executor, timeout=5)
    assert ended.reason is ExitReason.PREEMPTED
    assert ended.exit_code == 137


def test_first_stop_reason_wins_even_if_the_replica_exits_cleanly(jobs: Jobs) -> None:
    """Once stopped, the exit carries the stop's reason whatever the exit code, and a
    later stop does not change it."""
    executor = jobs.executor()
    handle, _ = jobs.launch(executor, ["trap 'exit 0' TERM; sleep 30 & wait"], shell=True)
    executor.stop(handle, StopReason.PREEMPTED, grace=10)
    executor.stop(handle, StopReason.CANCELLED, grace=10)
    ended = jobs.wait_one(executor)
    assert ended.reason is ExitReason.PREEMPTED


def test_stop_of_an_unknown_or_reported_handle_is_ignored(jobs: Jobs) -> None:
    """Stopping a replica that already ended, or one never seen, does nothing."""
    executor = jobs.executor()
    handle, _ = jobs.launch(executor, ["true"])
    jobs.wait_one(executor)
    executor.stop(handle, StopReason.CANCELLED, grace=1)
    assert executor.poll() == []
