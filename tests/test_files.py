"""Reading and writing the files a job left in its own directory: never through a
symlink, never blocking on a FIFO, only regular files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aios.files import NotARegularFile, open_in, read_in, write_in


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text("the control plane's\n")
    return path


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


def test_a_regular_file_is_read_and_written(job: Path) -> None:
    write_in(job, "result.pkl", b"value")
    assert read_in(job, "result.pkl", 100) == b"value"
    write_in(job, "result.pkl", b"v")  # truncated, not appended
    with open_in(job, "result.pkl") as handle:
        assert handle.read() == b"v"


@pytest.mark.parametrize("plant", ["symlink", "fifo", "directory"])
def test_what_a_job_planted_is_refused_both_ways(job: Path, secret: Path, plant: str) -> None:
    """A link to a file of the control plane's is neither read nor written through; a
    FIFO would block the reader (it is opened non-blocking, then refused)."""
    path = job / "stdout.log"
    if plant == "symlink":
        path.symlink_to(secret)
    elif plant == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(NotARegularFile):
        open_in(job, "stdout.log")
    with pytest.raises(NotARegularFile):
        write_in(job, "stdout.log", b"overwritten")
    assert secret.read_text() == "the control plane's\n"


def test_a_directory_swapped_for_a_symlink_is_refused(job: Path, secret: Path) -> None:
    """The directory itself is opened without following a link (a job's ``checkpoint``
    made a link to ``/etc``, say)."""
    (job / "checkpoint").symlink_to(secret.parent)
    with pytest.raises(NotARegularFile):
        open_in(job / "checkpoint", "secret")


def test_too_large_a_file_is_refused_and_names_only_one_component(job: Path) -> None:
    write_in(job, "big", b"x" * 101)
    with pytest.raises(NotARegularFile, match="larger than 100"):
        read_in(job, "big", 100)
    with pytest.raises(ValueError, match="one path component"):
        open_in(job, "../secret")
    with pytest.raises(FileNotFoundError):
        open_in(job, "absent")
