"""Storing and restoring trees: content, modes, empty files, symlinks, snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aios.data import FileNode, Repository, SymlinkNode
from aios.errors import InvalidInput, NotFound
from tests.data.store.conftest import reopen, same_tree


def test_tree_round_trips_with_modes_empty_files_and_symlinks(
    repo: Repository, tree: Path, tmp_path: Path
) -> None:
    """A restored tree equals the original: bytes, modes, mtimes, empty entries, links."""
    stored = repo.store_tree(tree)
    snapshot = repo.save_snapshot(stored.tree_id, paths=[str(tree)], tags={}, meta={})
    result = reopen(tmp_path / "repo").restore(snapshot.tree, tmp_path / "out")
    assert result.damaged == []
    assert result.files == stored.files == 5
    assert same_tree(tree, tmp_path / "out") == []
    assert (tmp_path / "out" / "empty-dir").is_dir()
    assert os.readlink(tmp_path / "out" / "outside-link") == "/etc"


def test_symlinks_are_stored_as_links_and_never_followed(repo: Repository, tree: Path) -> None:
    """A link to /etc is one entry; nothing under /etc is walked or stored."""
    stored = repo.store_tree(tree)
    entries = dict(repo.walk(stored.tree_id))
    link = entries["outside-link"]
    assert isinstance(link, SymlinkNode) and link.target == "/etc"
    assert not any(path.startswith("outside-link/") for path in entries)
    assert sorted(entries) == [
        "big.bin",
        "empty-dir",
        "empty.txt",
        "inside-link",
        "outside-link",
        "script.sh",
        "sub",
        "sub/deeper",
        "sub/deeper/small.bin",
        "sub/notes.txt",
    ]


def test_store_file_and_read_file_give_back_the_bytes(repo: Repository, tree: Path) -> None:
    """A file of many chunks reads back byte for byte."""
    node = repo.store_file(tree / "big.bin")
    assert isinstance(node, FileNode) and len(node.content) > 1
    assert b"".join(repo.read_file(node)) == (tree / "big.bin").read_bytes()


def test_a_single_file_root_is_one_entry(repo: Repository, tree: Path, tmp_path: Path) -> None:
    stored = repo.store_tree(tree / "script.sh")
    repo.restore(stored.tree_id, tmp_path / "one")
    assert os.listdir(tmp_path / "one") == ["script.sh"]
    assert (tmp_path / "one" / "script.sh").stat().st_mode & 0o777 == 0o751


def test_progress_reports_bytes_up_to_the_total(repo: Repository, tree: Path) -> None:
    seen: list[tuple[int, int]] = []
    stored = repo.store_tree(tree, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (stored.bytes, stored.bytes)


def test_include_restores_only_the_chosen_files(
    repo: Repository, tree: Path, tmp_path: Path
) -> None:
    stored = repo.store_tree(tree)
    result = repo.restore(stored.tree_id, tmp_path / "out", include=lambda p: p.endswith(".bin"))
    assert result.files == 2
    assert (tmp_path / "out" / "sub" / "deeper" / "small.bin").is_file()
    assert not (tmp_path / "out" / "sub" / "notes.txt").exists()


def test_restore_refuses_a_symlink_in_dest_leading_outside(
    repo: Repository, tree: Path, tmp_path: Path
) -> None:
    """A directory of the tree that is a symlink in dest would write outside it: refused,
    nothing written there."""
    stored = repo.store_tree(tree)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    os.symlink(outside, dest / "sub")
    with pytest.raises(InvalidInput, match="outside"):
        repo.restore(stored.tree_id, dest)
    assert os.listdir(outside) == []


def test_a_tree_naming_a_parent_directory_is_reported_not_written(
    repo: Repository, tmp_path: Path
) -> None:
    """A tampered tree with a '../' name never writes outside dest."""
    evil = b'[{"content":[],"mode":420,"mtime":0,"name":"../escape","size":0,"type":"file"}]'
    tree_id, _ = repo.store_blob("tree", evil)
    result = repo.restore(tree_id, tmp_path / "out")
    assert result.damaged == ["."]
    assert not (tmp_path / "escape").exists()


def test_snapshots_by_prefix_update_and_forget(repo: Repository, tree: Path) -> None:
    stored = repo.store_tree(tree)
    first = repo.save_snapshot(stored.tree_id, paths=["a"], tags={"v": "1"}, meta={"n": 1})
    second = repo.save_snapshot(stored.tree_id, paths=["b"], tags={}, meta={})
    assert [s.id for s in repo.snapshots()] == [first.id, second.id]
    assert repo.load_snapshot(first.id[:10]) == first
    updated = repo.update_snapshot(first.id[:10], tags={"v": "2"})
    assert updated.tags == {"v": "2"} and updated.meta == {"n": 1}
    assert repo.load_snapshot(first.id).tags == {"v": "2"}
    with pytest.raises(NotFound):
        repo.forget([second.id, "ffffffffffff"])
    assert len(repo.snapshots()) == 2
    repo.forget([second.id])
    assert [s.id for s in repo.snapshots()] == [first.id]
    with pytest.raises(NotFound):
        repo.load_snapshot(second.id)


def test_missing_root_is_a_clear_error(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="nope"):
        repo.store_tree(tmp_path / "nope")
