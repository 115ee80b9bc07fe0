"""Nothing outside a dataset gets in: symlinks out, odd files and ``../`` paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aios.data.datasets import DataStore
from aios.data.repository import Repository
from aios.data.safety import check_source, empty_destination, member_path
from aios.errors import InvalidInput


def _stored_files(repo_dir: Path) -> list[Path]:
    return sorted(p for p in repo_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize("target", ["/etc/hostname", "../outside.txt", "sub/../../outside.txt"])
def test_symlink_pointing_out_is_refused_and_nothing_written(
    store: DataStore, repo: Repository, tree: Path, tmp_path: Path, target: str
) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (tree / "escape").symlink_to(target)
    before = _stored_files(tmp_path / "repo")

    with pytest.raises(InvalidInput, match="points outside"):
        store.add("digits", tree)

    assert _stored_files(tmp_path / "repo") == before
    assert repo.snapshots() == []


def test_symlink_inside_the_tree_is_kept(store: DataStore, tree: Path) -> None:
    (tree / "sub" / "up").symlink_to("../train.csv")

    version = store.add("digits", tree)

    assert "sub/up" in dict(store.files(version))


def test_a_fifo_is_refused(tree: Path) -> None:
    os.mkfifo(tree / "pipe")

    with pytest.raises(InvalidInput, match="pipe: not a regular file"):
        check_source(tree)


def test_a_missing_source_or_a_symlinked_root_is_refused(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        check_source(tmp_path / "absent")
    (tmp_path / "alias").symlink_to(tree)
    with pytest.raises(InvalidInput, match="is a symlink"):
        check_source(tmp_path / "alias")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("../etc/passwd", "'..' would leave"),
        ("a/../../b", "'..' would leave"),
        ("/etc/passwd", "must be relative"),
        ("", "not a path"),
        (".", "names the dataset's root"),
        ("a\\b", "not a path"),
    ],
)
def test_member_path_refuses_paths_that_leave_the_dataset(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        member_path(text)


def test_member_path_normalises_harmless_forms() -> None:
    assert member_path("./images//a.png") == "images/a.png"


def test_empty_destination_accepts_missing_or_empty_and_refuses_a_file(tmp_path: Path) -> None:
    assert empty_destination(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert empty_destination(tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="not a directory"):
        empty_destination(tmp_path / "file")


def test_get_of_a_missing_version_creates_no_destination(
    store: DataStore, tree: Path, tmp_path: Path
) -> None:
    store.add("digits", tree)

    with pytest.raises(Exception, match="no version"):
        store.get("digits", 9, tmp_path / "out")

    assert not (tmp_path / "out").exists()


def test_empty_destination_refuses_a_path_under_a_file_or_one_that_cannot_be_made(
    tmp_path: Path,
) -> None:
    """``FILE/sub`` names FILE; ``/proc/x`` cannot be made; the probe leaves nothing."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="file is not a directory"):
        empty_destination(tmp_path / "file" / "sub" / "deeper")
    with pytest.raises(InvalidInput, match="/proc/aios-x: cannot be created"):
        empty_destination(Path("/proc/aios-x"))

    assert empty_destination(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()


def test_a_symlink_loop_is_refused(tree: Path) -> None:
    (tree / "sub" / "a").symlink_to("b")
    (tree / "sub" / "b").symlink_to("a")

    with pytest.raises(InvalidInput, match="symlink loop"):
        check_source(tree)
