"""Adoption: a new executor (a restarted control plane) takes charge of replicas an
earlier one launched, learning their exits from the exit file; replicas tied to their
executor's process by a lifeline end with it instead."""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import time

from aios.executors import ExitReason, StopReason
from aios.executors.process import find_wrapper
from tests.executors.jobdir import Jobs
from tests.processes import in_group, with_argv

WAIT_FOR_GO = "touch up; while [ ! -e go ]; do sleep 0.02; done; exit 7"

OWNER = """
import pickle, sys, time
from aios.executors import LocalExecutor
spec, sandbox, lifeline = pickle.load(sys.stdin.buffer)
LocalExecutor(sandbox=sandbox, lifeline=lifeline).launch(spec)
time.sleep(300)
"""
"""An executor's process that launches one replica and waits to be killed."""

PAUSE = f"307.{os.getpid()}"
"""The replicas' sleep: no other run's process sleeps exactly as long."""


def _sleepers() -> list[int]:
    return with_argv(["sleep", PAUSE])


def _owner_killed(jobs: Jobs, lifeline: bool) -> int:
    """Launches a sleeper from an executor in a child process, waits until it runs,
    SIGKILLs that process and returns the replica's process group."""
    spec = jobs.spec(["sh", "-c", f"touch up; exec sleep {PAUSE}"])
    with subprocess.Popen([sys.executable, "-c", OWNER], stdin=subprocess.PIPE) as owner:
        assert owner.stdin is not None
        owner.stdin.write(pickle.dumps((spec, jobs.sandbox, lifeline)))
        owner.stdin.close()
        jobs.wait_for((jobs.workdir / "up").exists, timeout=30)
        jobs.wait_for(lambda: bool(_sleepers()))
        found = find_wrapper(jobs.exit_file(replica=spec.replica))
        assert found is not None
        owner.send_signal(signal.SIGKILL)
    return found[0]


def test_replicas_with_a_lifeline_end_with_their_executors_process(jobs: Jobs) -> None:
    """A Ray node's agent dies: the replicas it launched, whose retries the control
    plane starts elsewhere, do not run on unwatched (sandboxed: the whole sandbox)."""
    try:
        group = _owner_killed(jobs, lifeline=True)
        jobs.wait_for(lambda: not in_group(group) and not _sleepers())
    finally:
        for pid in _sleepers():
            os.kill(pid, signal.SIGKILL)


PINNED = """
import pickle, sys, threading
from aios.executors import LocalExecutor
spec, sandbox = pickle.load(sys.stdin.buffer)
ended = threading.Event()
executor = LocalExecutor(sandbox=sandbox, lifeline=True, on_exit=ended.set)
executor.launch(spec)
assert ended.wait(30)
[exit] = executor.poll()
print(exit.reason.value, exit.exit_code)
"""
"""A fresh process, whose lifeline pipe takes its lowest free descriptors (3 and 4,
the numbers the gate and the first passed descriptor get in the wrapper)."""


def test_a_pinned_replica_with_a_lifeline_runs_to_its_own_end(jobs: Jobs) -> None:
    """The lifeline follows the gate that pins a replica (and a sandbox's descriptors)
    without taking the place of either, whatever their numbers in the executor's
    process: the replica runs and ends with its own code."""
    spec = jobs.spec(["sh", "-c", "echo ran; exit 3"], cores=(0,))
    done = subprocess.run(
        [sys.executable, "-c", PINNED],
        input=pickle.dumps((spec, jobs.sandbox)),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["failed", "3"]
    assert (jobs.workdir / "stdout.log").read_text() == "ran\n"
    assert (jobs.workdir / "stderr.log").read_text() == ""  # nothing of the wrapper's


def test_a_replica_with_a_lifeline_leaves_no_process_behind(jobs: Jobs) -> None:
    """The wrapper ends and reaps the child that waits on the lifeline: nothing of the
    replica's group is left once its exit is reported, not even a zombie (a container's
    first process may never reap one)."""
    executor = jobs.executor(lifeline=True)
    for _ in range(10):
        handle, _ = jobs.launch(executor, ["true"])
        assert jobs.wait_one(executor).reason is ExitReason.SUCCEEDED
        assert in_group(handle.pgid) == []
    assert (jobs.workdir / "stderr.log").read_text() == ""  # the shell said nothing


def test_replicas_without_a_lifeline_outlive_their_executors_process(jobs: Jobs) -> None:
    """The control plane's own executor: its replicas outlive it, to be adopted."""
    try:
        _owner_killed(jobs, lifeline=False)
        time.sleep(0.5)
        assert _sleepers()
    finally:
        for pid in _sleepers():
            os.kill(pid, signal.SIGKILL)


def test_adopted_replica_reports_its_exit_code(jobs: Jobs) -> None:
    """A replica launched by a closed executor is adopted alive by a new one, which
    reports its exit code from the exit file when it ends."""
    first = jobs.executor()
    handle, spec = jobs.launch(first, [WAIT_FOR_GO], shell=True)
    first.close()
    second = jobs.executor()
    assert second.adopt(handle, spec) is True
    assert second.adopt(handle, spec) is True
    (jobs.workdir / "go").touch()
    ended = jobs.wait_one(second)
    assert ended.reason is ExitReason.FAILED
    assert ended.exit_code == 7
    assert first.poll() == []


def test_adopted_replica_can_be_stopped(jobs: Jobs) -> None:
    """An adopted replica is stopped like one launched here."""
    first = jobs.executor()
    handle, spec = jobs.launch(first, ["sleep", "30"])
    first.close()
    second = jobs.executor()
    assert second.adopt(handle, spec)
    second.stop(handle, StopReason.CANCELLED, grace=5)
    ended = jobs.wait_one(second)
    assert (ended.reason, ended.exit_code) == (ExitReason.CANCELLED, 143)


def test_adoption_keeps_the_original_time_limit(jobs: Jobs) -> None:
    """The time limit counts from the replica's start, not from its adoption."""
    first = jobs.executor()
    handle, spec = jobs.launch(first, ["sleep", "30"], time_limit=3, grace=5)
    first.close()
    time.sleep(2)
    second = jobs.executor()
    adopted = time.monotonic()
    assert second.adopt(handle, spec)
    ended = jobs.wait_one(second, timeout=10)
    assert time.monotonic() - adopted < 2.9  # counted from the adoption: 3 s or more
    assert ended.reason is ExitReason.TIME_LIMIT


def test_adoption_resumes_the_memory_watchdog(jobs: Jobs) -> None:
    """Without cgroups, an adopted replica is still held to its memory limit."""
    grow = (
        "import os, time\nwhile not os.path.exists('go'): time.sleep(0.01)\n"
        "a = []\nwhile True:\n    a.append(b'x' * (4 << 20))\n    time.sleep(0.01)"
    )
    first = jobs.executor(isolation="rlimit")
    handle, spec = jobs.launch(first, [sys.executable, "-c", grow], memory=64 << 20)
    first.close()
    second = jobs.executor(isolation="rlimit", watchdog_interval=0.02)
    assert second.adopt(handle, spec)
    (jobs.workdir / "go").touch()
    ended = jobs.wait_one(second, timeout=15)
    assert ended.reason is ExitReason.OOM_KILLED


def test_adopting_a_replica_that_already_ended(jobs: Jobs) -> None:
    """A replica that ended while no executor watched it is reported from its exit
    file by the next poll() after adopt() returns False."""
    first = jobs.executor()
    handle, spec = jobs.launch(first, ["sh", "-c", "exit 5"])
    first.close()
    jobs.wait_for(lambda: jobs.gone(handle.pid))
    second = jobs.executor()
    assert second.adopt(handle, spec) is False
    (ended,) = second.poll()
    assert (ended.reason, ended.exit_code) == (ExitReason.FAILED, 5)
    assert jobs.gone(handle.pid)


def test_ended_replica_without_exit_file_is_lost(jobs: Jobs) -> None:
    """When the process is gone and no exit status was recorded, the replica is LOST."""
    first = jobs.executor()
    handle, spec = jobs.launch(first, ["true"])
    jobs.wait_one(first)
    first.close()
    os.unlink(handle.exit_file)
    second = jobs.executor()
    assert second.adopt(handle, spec) is False
    (ended,) = second.poll()
    assert ended.reason is ExitReason.LOST
    assert ended.exit_code is None


def test_recycled_pid_is_not_adopted(jobs: Jobs) -> None:
    """A live process whose create time differs from the handle's is someone else: the
    replica counts as gone, and the stranger is left alone."""
    first = jobs.executor()
    handle, spec = jobs.launch(first, ["sleep", "30"])
    first.close()
    stranger = dataclasses.replace(handle, started=handle.started - 3600)
    second = jobs.executor()
    assert second.adopt(stranger, spec) is False
    (ended,) = second.poll()
    assert ended.reason is ExitReason.LOST
    assert not jobs.gone(handle.pid)


def test_find_recovers_an_unrecorded_handle(jobs: Jobs) -> None:
    """A replica whose handle was never stored is found again from its spec, and can
    then be adopted; other replicas (that never ran) are not found."""
    first = jobs.executor()
    handle, spec = jobs.launch(first, [WAIT_FOR_GO], shell=True)
    first.close()
    second = jobs.executor()
    jobs.wait_for((jobs.workdir / "up").exists)  # its command line is set by then
    assert second.find(spec) == handle
    assert second.find(dataclasses.replace(spec, replica=spec.replica + 1)) is None
    assert second.find(dataclasses.replace(spec, attempt=spec.attempt + 1)) is None
    assert second.adopt(handle, spec)
    (jobs.workdir / "go").touch()
    assert jobs.wait_one(second).exit_code == 7


def test_find_recovers_a_replica_that_ran_and_ended_unwatched(jobs: Jobs) -> None:
    """A replica that ended while no control plane watched, its handle never stored, is
    found by its exit record: adopting it reports that exit, so it is not run again."""
    first = jobs.executor()
    _, spec = jobs.launch(first, ["exit 7"], shell=True)
    first.close()
    jobs.wait_for(jobs.exit_file(spec.attempt, spec.replica).exists)
    second = jobs.executor()
    found = second.find(spec)
    assert found is not None
    assert found.pid == 0
    assert not second.adopt(found, spec)
    (ended,) = second.poll()
    assert (ended.exit_code, ended.reason) == (7, ExitReason.FAILED)
    second.close()


def test_find_names_the_replicas_cgroup(jobs: Jobs) -> None:
    """A found handle names the cgroup its wrapper joined."""
    executor = jobs.cgroup_executor()
    handle, spec = jobs.launch(executor, ["touch up; exec sleep 30"], shell=True, memory=64 << 20)
    assert handle.cgroup != ""
    jobs.wait_for((jobs.workdir / "up").exists)
    assert executor.find(spec) == handle
    executor.stop(handle, StopReason.CANCELLED, grace=5)
    jobs.wait_one(executor)
