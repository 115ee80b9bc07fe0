"""A damaged or deleted index: named as such, read around, refused for writing and gc,
and repaired from the pack headers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aios.data import Damaged, FileNode, LocalBackend, Repository
from aios.data.pack import pack_path
from tests.data.store.conftest import PASSPHRASE, new_repo, random_bytes


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE: dict[str, Callable[[Path], object]] = {
    "flipped": _flip,
    "emptied": lambda path: path.write_bytes(b""),
    "garbage": lambda path: path.write_bytes(random_bytes(9, 700)),
    "deleted": lambda path: path.unlink(),
}


def _open(root: Path, encrypted: bool) -> Repository:
    return Repository.open(LocalBackend(root), PASSPHRASE if encrypted else None)


def _stored(tmp_path: Path, encrypted: bool) -> tuple[Path, dict[str, FileNode], str]:
    """A repository with one snapshot of a few files; returns its root, the files and
    the snapshot id."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(8):
        (src / "d" / f"f{i}.bin").write_bytes(random_bytes(300 + i, 30_000 + 7_000 * i))
    repo = new_repo(tmp_path / "repo", encrypted=encrypted)
    stored = repo.store_tree(src)
    snapshot = repo.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    files = {p: n for p, n in repo.walk(stored.tree_id) if isinstance(n, FileNode)}
    repo.close()
    return tmp_path / "repo", files, snapshot.id


def _damage_index(root: Path, how: str) -> None:
    index_files = sorted((root / "index").iterdir())
    assert index_files
    for path in index_files:
        DAMAGE[how](path)


ENCRYPTION = pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])


@ENCRYPTION
@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_check_names_a_damaged_index_and_blames_no_intact_file(
    tmp_path: Path, how: str, encrypted: bool
) -> None:
    root, _files, _snapshot = _stored(tmp_path, encrypted)
    _damage_index(root, how)

    verdict = _open(root, encrypted).check(read_data=True)

    assert not verdict.ok
    assert verdict.index_damaged
    assert any("aios data repair index" in error for error in verdict.errors)
    assert verdict.damaged_snapshots == {}
    assert verdict.damaged_blobs == []


@ENCRYPTION
@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_restore_reads_around_a_damaged_index_from_the_pack_headers(
    tmp_path: Path, how: str, encrypted: bool
) -> None:
    root, files, snapshot_id = _stored(tmp_path, encrypted)
    _damage_index(root, how)
    repo = _open(root, encrypted)

    restored = repo.restore(repo.load_snapshot(snapshot_id).tree, tmp_path / "out")

    assert restored.damaged == []
    assert restored.files == len(files)
    for rel in files:
        assert (tmp_path / "out" / rel).read_bytes() == (tmp_path / "src" / rel).read_bytes()
    assert repo.index_damage() is not None
    assert "aios data repair index" in (repo.index_damage() or "")


@ENCRYPTION
@pytest.mark.parametrize("how", ["flipped", "emptied", "garbage"])
def test_storing_over_an_unreadable_index_is_refused_not_stored_again(
    tmp_path: Path, how: str, encrypted: bool
) -> None:
    root, _files, _snapshot = _stored(tmp_path, encrypted)
    _damage_index(root, how)
    packs_before = sorted((root / "data").rglob("*"))
    repo = _open(root, encrypted)

    with pytest.raises(Damaged, match="repair index"):
        repo.store_tree(tmp_path / "src")
    repo.close()

    assert sorted((root / "data").rglob("*")) == packs_before


@ENCRYPTION
@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_gc_over_a_damaged_index_deletes_nothing(tmp_path: Path, how: str, encrypted: bool) -> None:
    root, _files, _snapshot = _stored(tmp_path, encrypted)
    _damage_index(root, how)
    packs_before = sorted((root / "data").rglob("*"))

    with pytest.raises(Damaged, match="repair index"):
        _open(root, encrypted).gc()

    assert sorted((root / "data").rglob("*")) == packs_before


@ENCRYPTION
@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_rebuild_index_repairs_a_damaged_index(tmp_path: Path, how: str, encrypted: bool) -> None:
    root, files, _snapshot = _stored(tmp_path, encrypted)
    _damage_index(root, how)
    packs = len(list((root / "data").rglob("*"))) - len(list((root / "data").iterdir()))

    rebuilt = _open(root, encrypted).rebuild_index()

    assert rebuilt.packs == packs and rebuilt.unreadable == []
    repo = _open(root, encrypted)
    assert repo.check(read_data=True).ok
    assert repo.index_damage() is None
    assert repo.store_tree(tmp_path / "src").new_bytes == 0
    repo.close()
    assert len(files) == 8


def test_a_truncated_pack_is_found_without_reading_data(tmp_path: Path) -> None:
    """The structure check compares each pack's size with the blobs placed in it."""
    root, files, snapshot_id = _stored(tmp_path, True)
    repo = _open(root, True)
    victim = max(
        (p for p, es in repo.index.packs.items() if all(e.type == "data" for e in es.values())),
        key=lambda p: len(repo.index.packs[p]),
    )
    path = root / pack_path(victim)
    cut = path.stat().st_size // 2
    path.write_bytes(path.read_bytes()[:cut])
    lost = {b for b, e in repo.index.packs[victim].items() if e.offset + e.length > cut}

    verdict = _open(root, True).check()

    assert not verdict.ok and not verdict.index_damaged
    assert verdict.damaged_packs == [victim]
    assert set(verdict.damaged_blobs) == lost
    expected = sorted(p for p, n in files.items() if lost & set(n.content))
    assert verdict.damaged_snapshots == {snapshot_id: expected}


def test_rebuild_index_keeps_a_truncated_packs_intact_blobs(tmp_path: Path) -> None:
    """A truncated pack has lost its header; the rebuilt index keeps what the old index
    said of it, so the files whose chunks lie before the cut stay restorable."""
    root, files, snapshot_id = _stored(tmp_path, True)
    repo = _open(root, True)
    victim = max(repo.index.packs, key=lambda p: len(repo.index.packs[p]))
    path = root / pack_path(victim)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = repo.check()

    rebuilt = _open(root, True).rebuild_index()

    assert rebuilt.unreadable == []
    after = _open(root, True).check()
    assert after.damaged_snapshots == before.damaged_snapshots
    assert after.damaged_blobs == before.damaged_blobs
    assert len(after.damaged_snapshots[snapshot_id]) < len(files)
