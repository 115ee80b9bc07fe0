"""Garbage collection (and its lock against writers) and incremental copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from aios.data import LocalBackend, Repository, copy_to
from aios.errors import Busy, InvalidInput
from tests.data.store.conftest import make_tree, new_repo, random_bytes, reopen, same_tree


def test_gc_removes_what_no_snapshot_references_and_keeps_the_rest(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "shared.bin").write_bytes(random_bytes(1, 200_000))
    (src / "old.bin").write_bytes(random_bytes(2, 200_000))
    old = repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})
    (src / "old.bin").unlink()
    (src / "new.bin").write_bytes(random_bytes(3, 200_000))
    new = repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})
    old_chunks = {
        c
        for _, node in repo.walk(old.tree)
        if node.type == "file" and node.name == "old.bin"
        for c in node.content
    }
    before = repo.stats()
    repo.forget([old.id])
    result = repo.gc()
    after = reopen(tmp_path / "repo")
    assert result.removed_blobs == len(old_chunks) + 1  # its chunks and the old top tree
    assert result.freed_bytes > 0
    assert not old_chunks & set(after.index.blobs)
    assert after.stats().blobs == before.blobs - result.removed_blobs
    assert after.check(read_data=True).ok
    after.restore(new.tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []


def test_gc_waits_for_a_writer_that_has_not_saved_its_snapshot(
    repo: Repository, tmp_path: Path
) -> None:
    """Blobs a concurrent writer stored, but no snapshot names yet, are not collected:
    gc refuses while the writer's lock is held, and runs once the snapshot is saved."""
    src = make_tree(tmp_path / "src")
    writer = reopen(tmp_path / "repo")
    stored = writer.store_tree(src)
    collector = reopen(tmp_path / "repo")
    with pytest.raises(Busy, match="locked"):
        collector.gc()
    snapshot = writer.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    assert collector.gc().removed_blobs == 0
    fresh = reopen(tmp_path / "repo")
    assert fresh.check(read_data=True).ok
    fresh.restore(snapshot.tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []


def test_a_writer_waits_for_gc(repo: Repository, tmp_path: Path) -> None:
    from aios.data.locks import acquire

    held = acquire(repo.backend, exclusive=True)
    with pytest.raises(Busy, match="exclusive"):
        reopen(tmp_path / "repo").store_tree(make_tree(tmp_path / "src"))
    held.release()


def test_copy_is_incremental_and_the_copy_restores(repo: Repository, tmp_path: Path) -> None:
    """The second copy transfers only the blobs the new snapshot added."""
    src = make_tree(tmp_path / "src")
    repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={"v": "1"}, meta={})
    dest = Repository.init(LocalBackend(tmp_path / "backup"), "another passphrase")
    first = copy_to(repo, dest)
    assert first.snapshots == 1 and first.blobs == repo.stats().blobs

    (src / "added.bin").write_bytes(random_bytes(9, 50_000))
    stored = repo.store_tree(src)
    second_snapshot = repo.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    second = copy_to(repo, dest)
    assert second.snapshots == 1
    assert second.blobs == stored.new_chunks + 1  # new chunks and the changed top tree
    assert second.packs <= 2
    assert copy_to(repo, dest).snapshots == 0

    backup = Repository.open(LocalBackend(tmp_path / "backup"), "another passphrase")
    assert backup.check(read_data=True).ok
    assert [s.id for s in backup.snapshots()] == [s.id for s in repo.snapshots()]
    backup.restore(backup.load_snapshot(second_snapshot.id).tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []


def test_copy_refuses_a_destination_chunked_with_another_key(
    repo: Repository, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src")
    repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})
    other = new_repo(tmp_path / "other")
    other.save_snapshot(other.store_tree(src).tree_id, paths=[], tags={}, meta={})
    with pytest.raises(InvalidInput, match="empty repository"):
        copy_to(repo, other)


def test_a_writer_open_across_a_gc_does_not_trust_collected_blobs(
    repo: Repository, tmp_path: Path
) -> None:
    """A long-lived writer re-reads the index after a gc, so content gc removed is
    stored again instead of being deduplicated against chunks that are gone."""
    src = make_tree(tmp_path / "src")
    writer = reopen(tmp_path / "repo")
    first = writer.save_snapshot(writer.store_tree(src).tree_id, paths=[], tags={}, meta={})
    collector = reopen(tmp_path / "repo")
    collector.forget([first.id])
    assert collector.gc().removed_blobs > 0
    again = writer.store_tree(src)
    assert again.new_bytes == again.bytes
    snapshot = writer.save_snapshot(again.tree_id, paths=[], tags={}, meta={})
    assert reopen(tmp_path / "repo").check(read_data=True).ok
    writer.restore(snapshot.tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []
