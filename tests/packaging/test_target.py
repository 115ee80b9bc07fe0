"""A packaging command's directory is written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from aios.errors import InvalidInput
from aios.packaging.target import staged_directory


def test_a_new_directory_appears_only_when_complete(tmp_path: Path) -> None:
    destination = tmp_path / "nested" / "bundle"
    with staged_directory(destination, force=False) as staging:
        (staging / "a.txt").write_text("a")
        assert not destination.exists()
    assert (destination / "a.txt").read_text() == "a"
    assert [p.name for p in destination.parent.iterdir()] == ["bundle"]


def test_a_failure_leaves_the_old_contents_and_no_staging(tmp_path: Path) -> None:
    destination = tmp_path / "bundle"
    destination.mkdir()
    (destination / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_directory(destination, force=True) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("the disk is full")
    assert [p.name for p in destination.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_force_replaces_the_contents(tmp_path: Path) -> None:
    destination = tmp_path / "bundle"
    destination.mkdir()
    (destination / "old.txt").write_text("old")
    with staged_directory(destination, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in destination.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_an_empty_directory_is_used_without_force(tmp_path: Path) -> None:
    destination = tmp_path / "bundle"
    destination.mkdir()
    with staged_directory(destination, force=False) as staging:
        (staging / "x").write_text("x")
    assert (destination / "x").is_file()


@pytest.mark.parametrize("force", [False, True])
def test_a_file_in_the_way_is_refused(tmp_path: Path, force: bool) -> None:
    (tmp_path / "bundle").write_text("a file")
    with (
        pytest.raises(InvalidInput, match="exists and is not a directory"),
        staged_directory(tmp_path / "bundle", force=force),
    ):
        pytest.fail("nothing may be written")
