"""The pieces of a replica's process: exit records, wait statuses, /proc readings."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from aios.executors.process import (
    exit_code_of,
    read_exit_file,
    read_exit_record,
    read_stat,
    rss_by_group,
)


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"0\n", 0), (b"137\n", 137), (b"", None), (b"13", None), (b"garbage\n", None)],
)
def test_exit_file_needs_a_complete_record(
    tmp_path: Path, content: bytes, code: int | None
) -> None:
    """Only a whole line with a number is an exit status; anything else is no record."""
    path = tmp_path / ".exit-1-0"
    path.write_bytes(content)
    assert read_exit_file(path) == code


@pytest.mark.parametrize(
    ("content", "record"),
    [
        (b"137 1\n", (137, 1)),  # killed, and its cgroup counted an OOM kill
        (b"137 0\n", (137, 0)),
        (b"5\n", (5, 0)),  # an earlier wrapper's record: the status alone
        (b"1 2 3\n", None),
        (b"137 1", None),
    ],
)
def test_an_exit_record_holds_the_status_and_the_oom_kills(
    tmp_path: Path, content: bytes, record: tuple[int, int] | None
) -> None:
    path = tmp_path / ".exit-1-0"
    path.write_bytes(content)
    assert read_exit_record(path) == record


def test_missing_exit_file_is_no_record(tmp_path: Path) -> None:
    """No file, no record."""
    assert read_exit_file(tmp_path / "absent") is None


def test_exit_code_follows_the_shell_convention() -> None:
    """A normal exit keeps its code; death by signal N becomes 128 + N."""
    exits = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], os.environ)
    _, status = os.waitpid(exits, 0)
    assert exit_code_of(status) == 3
    killed = os.posix_spawn("/bin/sh", ["sh", "-c", "kill -KILL $$"], os.environ)
    _, status = os.waitpid(killed, 0)
    assert exit_code_of(status) == 128 + signal.SIGKILL


def test_stat_agrees_with_psutil() -> None:
    """Create time, group and resident memory read as psutil reads them."""
    me = psutil.Process()
    stat = read_stat(os.getpid())
    assert stat is not None
    assert stat.started == pytest.approx(me.create_time(), abs=0.01)
    assert stat.pgid == os.getpgid(0)
    assert stat.rss == pytest.approx(me.memory_info().rss, rel=0.2)
    assert not stat.ended
    assert 0 <= stat.age < 24 * 3600 * 365


def test_rss_by_group_sums_the_members() -> None:
    """The resident memory of a group is the sum over its processes."""
    total = rss_by_group([os.getpgid(0), -1])
    assert total[-1] == 0
    stat = read_stat(os.getpid())
    assert stat is not None
    assert total[os.getpgid(0)] >= stat.rss
