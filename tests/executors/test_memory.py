"""Memory limits: a cgroup per replica where one can be created, otherwise the RSS
watchdog with an address-space backstop."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from aios.errors import InvalidInput
from aios.executors import ExitReason, LocalExecutor
from aios.executors.isolation import REUSE_CHARGE, _reusable
from tests.executors.jobdir import Jobs

MIB = 1 << 20

GROW_FAST = "a = []\nwhile True: a.append(b'x' * (1 << 20))"
GROW_STEADILY = (
    "import time\na = []\nwhile True:\n    a.append(b'x' * (4 << 20))\n    time.sleep(0.01)"
)
HOLD_40_MIB = 'import time; a = b"x" * (40 << 20); time.sleep(30)'
SHOW_CGROUP = (
    "line = next(l for l in open('/proc/self/cgroup') if ':memory:' in l or l.startswith('0::'))\n"
    "print(line.strip().split(':', 2)[2])"
)


def test_cgroup_oom_kill_is_reported(jobs: Jobs) -> None:
    """A replica that allocates without bound is killed at its cgroup's limit and
    reported OOM_KILLED; a replica beside it and this process carry on."""
    executor = jobs.cgroup_executor()
    assert executor.memory_isolation in ("cgroup-v1", "cgroup-v2")
    greedy, _ = jobs.launch(executor, [sys.executable, "-c", GROW_FAST], memory=64 * MIB)
    jobs.launch(executor, ["sh", "-c", "sleep 0.2"], memory=64 * MIB)
    exits = {e.reason: e for e in jobs.wait(executor, 2, timeout=15)}
    oom = exits[ExitReason.OOM_KILLED]
    assert oom.replica == greedy.replica
    assert oom.exit_code == 137
    assert "killed at its memory limit of 64.0MiB" in oom.message
    assert exits[ExitReason.SUCCEEDED].exit_code == 0
    assert not Path(greedy.cgroup).exists(), "a cgroup with an OOM kill is never reused"


def test_replica_runs_inside_its_limited_cgroup(jobs: Jobs) -> None:
    """The command runs in the cgroup named by its handle, which holds its limit; the
    cgroup is empty once the replica ends, and removed when the executor closes."""
    executor = jobs.cgroup_executor()
    handle, _ = jobs.launch(executor, [sys.executable, "-c", SHOW_CGROUP], memory=96 * MIB)
    cgroup = Path(handle.cgroup)
    limit_file = (
        "memory.max" if executor.memory_isolation == "cgroup-v2" else "memory.limit_in_bytes"
    )
    assert int((cgroup / limit_file).read_text()) == 96 * MIB
    assert jobs.wait_one(executor).reason is ExitReason.SUCCEEDED
    inside = (jobs.workdir / "stdout.log").read_text().strip()
    assert handle.cgroup.endswith(inside)
    assert not cgroup.exists() or (cgroup / "cgroup.procs").read_text() == ""
    executor.close()
    assert not cgroup.exists()


def test_a_clean_cgroup_is_reused_for_the_same_limit(jobs: Jobs) -> None:
    """A replica that ends cleanly leaves its cgroup to the next replica with the same
    limit; a replica with another limit gets a cgroup of its own."""
    executor = jobs.cgroup_executor()
    first, _ = jobs.launch(executor, ["true"], memory=64 * MIB)
    assert jobs.wait_one(executor).reason is ExitReason.SUCCEEDED
    second, _ = jobs.launch(executor, ["true"], memory=64 * MIB)
    other, _ = jobs.launch(executor, ["true"], memory=32 * MIB)
    jobs.wait(executor, 2)
    assert second.cgroup == first.cgroup
    assert other.cgroup != first.cgroup


def test_a_cgroup_left_holding_page_cache_is_not_reused(jobs: Jobs) -> None:
    """A replica that wrote 4 MiB to a file leaves those pages charged to its cgroup:
    the next replica with the same limit gets a fresh one, not a smaller limit."""
    executor = jobs.cgroup_executor()
    first, _ = jobs.launch(
        executor, ["sh", "-c", "head -c 4194304 /dev/zero >filler"], memory=64 * MIB
    )
    assert jobs.wait_one(executor).reason is ExitReason.SUCCEEDED
    second, _ = jobs.launch(executor, ["true"], memory=64 * MIB)
    assert jobs.wait_one(executor).reason is ExitReason.SUCCEEDED
    assert second.cgroup != first.cgroup


def _ended_replicas_cgroup(path: Path, usage: int, kmem: int, cache: int) -> Path:
    """A v1 memory cgroup's files as a replica that ended leaves them."""
    path.mkdir()
    (path / "cgroup.procs").write_text("")
    (path / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (path / "memory.kmem.usage_in_bytes").write_text(f"{kmem}\n")
    (path / "memory.stat").write_text(f"cache {cache}\nrss 0\nmapped_file 0\n")
    (path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    return path


def test_pages_left_behind_decide_reuse_not_kernel_objects_being_freed(
    tmp_path: Path,
) -> None:
    """As read when a sandboxed `true` has just ended (1.1 MiB charged, 600 KiB of it its
    namespaces' kernel objects, freed within 100 ms): reused. A replica that left more
    than REUSE_CHARGE of page cache behind: not reused."""
    settling = _ended_replicas_cgroup(tmp_path / "a", 1_150_000, 616 << 10, 24 << 10)
    assert _reusable(settling, 1)
    cached = _ended_replicas_cgroup(tmp_path / "b", 5 * MIB, 16 << 10, REUSE_CHARGE + 4096)
    assert not _reusable(cached, 1)


def test_an_oom_kill_is_reported_only_in_the_replica_that_had_it(jobs: Jobs) -> None:
    """After an OOM kill, the next replicas with the same limit fail or succeed on
    their own account: none of them is reported OOM-killed."""
    executor = jobs.cgroup_executor()
    jobs.launch(executor, [sys.executable, "-c", GROW_FAST], memory=64 * MIB)
    assert jobs.wait_one(executor, timeout=15).reason is ExitReason.OOM_KILLED
    for command in (["true"], ["sh", "-c", "kill -9 $$"], ["true"], ["false"]):
        jobs.launch(executor, command, memory=64 * MIB)
        reason = jobs.wait_one(executor).reason
        assert reason in (ExitReason.SUCCEEDED, ExitReason.FAILED)


def test_no_cgroup_without_a_memory_limit(jobs: Jobs) -> None:
    """memory=0 means no limit, and no cgroup is made."""
    executor = jobs.cgroup_executor()
    handle, _ = jobs.launch(executor, ["true"])
    assert handle.cgroup == ""
    assert jobs.wait_one(executor).reason is ExitReason.SUCCEEDED


def test_watchdog_kills_at_the_limit(jobs: Jobs) -> None:
    """Without cgroups, the RSS watchdog kills a replica that grows past its limit and
    it is reported OOM_KILLED."""
    executor = jobs.executor(isolation="rlimit", watchdog_interval=0.02)
    assert executor.memory_isolation == "rlimit"
    handle, _ = jobs.launch(executor, [sys.executable, "-c", GROW_STEADILY], memory=64 * MIB)
    assert handle.cgroup == ""
    ended = jobs.wait_one(executor, timeout=15)
    assert ended.reason is ExitReason.OOM_KILLED
    assert ended.exit_code == 137
    assert "killed at its memory limit of 64.0MiB (its processes held" in ended.message


def test_watchdog_sums_the_whole_process_group(jobs: Jobs) -> None:
    """Three processes of 40 MiB each are within a 100 MiB limit one by one, but not
    together: the watchdog counts the group."""
    executor = jobs.executor(isolation="rlimit", watchdog_interval=0.02)
    three = " & ".join([f"{sys.executable} -c '{HOLD_40_MIB}'"] * 3) + " & wait"
    jobs.launch(executor, [three], shell=True, memory=100 * MIB)
    ended = jobs.wait_one(executor, timeout=15)
    assert ended.reason is ExitReason.OOM_KILLED


def test_address_space_backstop(jobs: Jobs) -> None:
    """Without cgroups a limited replica also runs under RLIMIT_AS, as a backstop."""
    executor = jobs.executor(isolation="rlimit")
    jobs.launch(executor, ["ulimit -v"], shell=True, memory=64 * MIB)
    jobs.launch(executor, ["ulimit -v"], shell=True)
    jobs.wait(executor, 2)
    limits = sorted((jobs.workdir / "stdout.log").read_text().split())
    assert limits == [str((2 * 64 * MIB + (1 << 30)) // 1024), "unlimited"]


def test_cgroup_isolation_refused_where_impossible(tmp_path: Path) -> None:
    """Asking for cgroups in a directory that is no cgroup is an input error."""
    with pytest.raises(InvalidInput, match="cgroup_root"):
        LocalExecutor(tmp_path / "not-a-cgroup", isolation="cgroup")
    assert os.listdir(tmp_path / "not-a-cgroup") == []
