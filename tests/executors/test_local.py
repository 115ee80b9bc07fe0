"""Launching replicas: environment, cores, logs, working directory, exit codes."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from pathlib import Path

import psutil
import pytest

from aios.errors import InvalidInput
from aios.executors import ExitReason, LocalExecutor
from tests.executors.jobdir import Jobs

DUMP_AFFINITY = (
    "import os; print(','.join(map(str, sorted(os.sched_getaffinity(0)))), flush=True); "
    "os.system('grep Cpus_allowed_list /proc/self/status')"
)


def _environment_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_environment_is_the_jobs_and_its_allocation(
    jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replica sees the job's variables, the AIOS_* variables of its allocation and
    PATH/LANG/HOME defaults, and nothing of the executor's own environment;
    CUDA_VISIBLE_DEVICES names exactly its GPUs (as the sandbox numbers them)."""
    monkeypatch.setenv("AIOS_TEST_PARENT", "inherited")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the control plane's")
    executor = jobs.executor()
    jobs.launch(
        executor,
        ["env"],
        env={"JOB_SETTING": "42", "CUDA_VISIBLE_DEVICES": "7"},
        gpus=(0, 2),
        cores=(0,),
        memory=1 << 30,
        node="node-a",
        replica=3,
        attempt=2,
    )
    assert jobs.wait_one(executor).reason is ExitReason.SUCCEEDED
    env = _environment_of((jobs.workdir / "stdout.log").read_text())
    assert "AIOS_TEST_PARENT" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    shells = {"PWD", "OLDPWD", "SHLVL", "_"}  # what a shell on the way may add
    allocation = {k for k in env if k.startswith("AIOS_")}
    assert set(env) - shells - allocation == {
        "PATH",
        "LANG",
        "HOME",
        "JOB_SETTING",
        "CUDA_VISIBLE_DEVICES",
    }
    assert env["HOME"] == str(jobs.workdir)
    assert env["PATH"].split(":")[0] == os.path.dirname(sys.executable)
    assert env["JOB_SETTING"] == "42"
    visible = jobs.sandbox.gpu_visible((0, 2)) if jobs.sandbox is not None else "0,2"
    assert env["CUDA_VISIBLE_DEVICES"] == visible
    assert env["AIOS_GPUS"] == "0,2"
    assert env["AIOS_JOB_DIR"] == str(jobs.workdir)
    assert env["AIOS_JOB_ID"] == "job-1"
    assert env["AIOS_ATTEMPT"] == "2"
    assert env["AIOS_REPLICA"] == "3"
    assert env["AIOS_CHECKPOINT_DIR"] == str(jobs.workdir / "checkpoints")
    assert env["AIOS_NODE"] == "node-a"
    assert env["AIOS_CORES"] == "0"
    assert env["AIOS_MEMORY"] == str(1 << 30)


def test_no_gpus_means_none_visible(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica without GPUs gets an empty CUDA_VISIBLE_DEVICES, whatever its parent has."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    executor = jobs.executor()
    jobs.launch(executor, ["env"])
    jobs.wait_one(executor)
    env = _environment_of((jobs.workdir / "stdout.log").read_text())
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["AIOS_GPUS"] == ""


def test_replica_and_its_children_run_on_the_allocated_cores(jobs: Jobs) -> None:
    """The replica and the processes it starts are pinned to its cores; the launching
    thread keeps its own affinity."""
    core = max(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    executor = jobs.executor()
    jobs.launch(executor, [sys.executable, "-c", DUMP_AFFINITY], cores=(core,))
    assert jobs.wait_one(executor).reason is ExitReason.SUCCEEDED
    assert os.sched_getaffinity(0) == before
    lines = (jobs.workdir / "stdout.log").read_text().splitlines()
    assert lines[0] == str(core)
    assert lines[1].split() == ["Cpus_allowed_list:", str(core)]


def test_no_cores_means_no_pinning(jobs: Jobs) -> None:
    """A replica without cores runs wherever its parent may."""
    executor = jobs.executor()
    jobs.launch(executor, [sys.executable, "-c", DUMP_AFFINITY])
    jobs.wait_one(executor)
    first = (jobs.workdir / "stdout.log").read_text().splitlines()[0]
    assert first == ",".join(map(str, sorted(os.sched_getaffinity(0))))


def test_logs_are_appended_and_cwd_is_the_workdir(jobs: Jobs) -> None:
    """stdout and stderr go to the replica's files, appended across attempts; the
    working directory is the job's."""
    executor = jobs.executor()
    script = "pwd; echo out-$AIOS_ATTEMPT; echo err-$AIOS_ATTEMPT >&2"
    for attempt in (1, 2):
        jobs.launch(executor, [script], shell=True, attempt=attempt)
        jobs.wait_one(executor)
    out = (jobs.workdir / "stdout.log").read_text().splitlines()
    assert out == [str(jobs.workdir), "out-1", str(jobs.workdir), "out-2"]
    assert (jobs.workdir / "stderr.log").read_text().splitlines() == ["err-1", "err-2"]


@pytest.mark.parametrize(
    ("command", "code", "reason", "message"),
    [
        (["true"], 0, ExitReason.SUCCEEDED, "exited with code 0"),
        (["sh", "-c", "exit 3"], 3, ExitReason.FAILED, "exited with code 3"),
        (["aios-no-such-command"], 127, ExitReason.FAILED, "command not found"),
        (["sh", "-c", "kill -SEGV $$"], 139, ExitReason.FAILED, "killed by SIGSEGV"),
    ],
)
def test_exit_codes_and_reasons(
    jobs: Jobs, command: list[str], code: int, reason: ExitReason, message: str
) -> None:
    """Exit code 0 succeeds, anything else fails; death by signal N reads 128 + N."""
    executor = jobs.executor()
    jobs.launch(executor, command, replica=5, attempt=4)
    ended = jobs.wait_one(executor)
    assert (ended.job_id, ended.attempt, ended.replica) == ("job-1", 4, 5)
    assert ended.exit_code == code
    assert ended.reason is reason
    assert message in ended.message


def test_shell_command(jobs: Jobs) -> None:
    """A shell command runs through /bin/sh -c with its pipes and exit status."""
    executor = jobs.executor()
    jobs.launch(executor, ["echo hello | tr a-z A-Z && exit 4"], shell=True)
    ended = jobs.wait_one(executor)
    assert ended.exit_code == 4
    assert (jobs.workdir / "stdout.log").read_text() == "HELLO\n"


def test_handle_names_the_process_group_and_its_start(jobs: Jobs) -> None:
    """The handle holds the wrapper's pid, which leads its own session and group, its
    create time as psutil reports it, and an exit file in the job's control directory
    (its own directory when it has none)."""
    executor = jobs.executor()
    held = ["sh", "-c", "while [ ! -e go ]; do sleep 0.01; done"]  # alive until released
    handle, _ = jobs.launch(executor, held, attempt=3, replica=1)
    assert handle.pgid == handle.pid == os.getsid(handle.pid) == os.getpgid(handle.pid)
    assert handle.started == pytest.approx(psutil.Process(handle.pid).create_time(), abs=0.01)
    assert handle.exit_file == str(jobs.exit_file(3, 1))
    (jobs.workdir / "go").touch()
    jobs.wait_one(executor)
    assert jobs.exit_file(3, 1).read_text() == "0 0\n"  # its status, and no OOM kill


def test_every_exit_reported_exactly_once(jobs: Jobs) -> None:
    """Many quick replicas each come out of poll() once; an idle poll() returns nothing."""
    executor = jobs.executor()
    for _ in range(30):
        jobs.launch(executor, ["true"])
    exits = jobs.wait(executor, 30)
    assert sorted(e.replica for e in exits) == list(range(30))
    assert executor.poll() == []


def test_on_exit_is_called_from_the_watcher(jobs: Jobs) -> None:
    """The on_exit callback fires once the exit is already queued for poll()."""
    seen: list[int] = []
    done = threading.Event()

    def on_exit() -> None:
        seen.append(len(executor.poll()))
        done.set()

    executor = LocalExecutor(on_exit=on_exit, sandbox=jobs.sandbox)
    try:
        handle = executor.launch(jobs.spec(["true"]))
        jobs.handles.append(handle)
        assert done.wait(10)
        assert seen == [1]
    finally:
        executor.close()


@pytest.mark.parametrize(
    ("command", "shell"),
    [([], False), (["echo a", "echo b"], True)],
)
def test_malformed_command_is_refused(jobs: Jobs, command: list[str], shell: bool) -> None:
    """An empty argv, or a shell command that is not one string, is refused by name."""
    executor = jobs.executor()
    with pytest.raises(InvalidInput, match="job-1: command"):
        executor.launch(jobs.spec(command, shell=shell))


def test_close_leaves_replicas_running(jobs: Jobs) -> None:
    """close() stops watching but does not touch the processes."""
    executor = jobs.executor()
    handle, _ = jobs.launch(executor, ["sleep", "10"])
    executor.close()
    executor.close()
    assert not jobs.gone(handle.pid)
    with pytest.raises(RuntimeError):
        executor.launch(jobs.spec(["true"]))


def test_exits_are_noticed_without_pidfds(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a kernel without pidfd_open the watcher checks replicas on a short tick."""

    def no_pidfds(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfds)
    executor = jobs.executor()
    jobs.launch(executor, ["sh", "-c", "exit 2"])
    jobs.launch(executor, ["sleep", "10"], time_limit=0.2, grace=5)
    exits = {e.reason: e for e in jobs.wait(executor, 2)}
    assert exits[ExitReason.FAILED].exit_code == 2
    assert exits[ExitReason.TIME_LIMIT].exit_code == 143


def test_a_log_that_cannot_be_opened_fails_the_launch(jobs: Jobs) -> None:
    """The executor opens the logs; when it cannot, launch raises OSError naming the
    log and the command never runs."""
    executor = jobs.executor()
    marker = jobs.workdir / "ran"
    spec = jobs.spec(["touch", str(marker)])
    unwritable = jobs.workdir / "no-such-directory" / "stdout.log"
    with pytest.raises(OSError, match="no-such-directory"):
        executor.launch(dataclasses.replace(spec, stdout=unwritable))
    assert not marker.exists()


@pytest.mark.parametrize("plant", ["symlink", "fifo", "directory"])
def test_a_log_planted_by_the_job_is_refused(jobs: Jobs, tmp_path: Path, plant: str) -> None:
    """A job may leave anything under its log's name in its own directory: a symlink
    (which the executor, with its rights, would write through), a FIFO (which would
    block it) or a directory. The launch refuses each, and writes nothing elsewhere."""
    executor = jobs.executor()
    target = tmp_path / "precious"
    target.write_text("keep\n")
    log = jobs.workdir / "stdout.log"
    if plant == "symlink":
        log.symlink_to(target)
    elif plant == "fifo":
        os.mkfifo(log)
    else:
        log.mkdir()
    with pytest.raises(OSError, match=r"stdout\.log"):
        jobs.launch(executor, ["echo", "overwritten"])
    assert target.read_text() == "keep\n"
