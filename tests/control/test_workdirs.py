"""Jobs' working directories are made while the jobs wait, and again at launch."""

from __future__ import annotations

import time
from pathlib import Path

from aios.control.layout import job_dir, prepare_workdir
from aios.control.workdirs import Workdirs
from tests.control.control_harness import Running


def test_the_thread_makes_the_directories_it_was_handed(tmp_path: Path) -> None:
    """Each job handed to :meth:`Workdirs.expect` has its directory and checkpoint
    directory once the thread has stopped (it works through what it was given first)."""
    (tmp_path / "jobs").mkdir()
    workdirs = Workdirs(tmp_path)
    workdirs.start()
    for job_id in (3, 4):
        workdirs.expect(job_id)
    workdirs.stop()
    assert all((job_dir(tmp_path, j) / "checkpoint").is_dir() for j in (3, 4))


def test_preparing_tolerates_what_exists_already(tmp_path: Path) -> None:
    """A directory made ahead, in part or whole, is completed, its files kept."""
    (tmp_path / "jobs" / "7").mkdir(parents=True)
    (tmp_path / "jobs" / "7" / "function.pkl").write_bytes(b"payload")
    prepare_workdir(tmp_path, 7)
    prepare_workdir(tmp_path, 7)
    assert (tmp_path / "jobs" / "7" / "checkpoint").is_dir()
    assert (tmp_path / "jobs" / "7" / "function.pkl").read_bytes() == b"payload"


def test_a_waiting_job_has_its_directory_before_it_starts(control: Running) -> None:
    """A job that waits for another finds its directory made while it waited."""
    first = control.admin.submit(["sleep", "30"], cpus=1, memory="64M")
    waiting = control.admin.submit(["true"], cpus=1, memory="64M", after=[first.id])
    checkpoint = job_dir(control.home, waiting.id) / "checkpoint"
    deadline = time.monotonic() + 10
    while not checkpoint.is_dir():
        assert time.monotonic() < deadline, "the directory was not made ahead"
        time.sleep(0.01)
    assert control.admin.get(waiting.id).state == "queued"
