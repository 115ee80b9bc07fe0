"""Bit flips in packs: check names exactly what is damaged, restore saves the rest."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aios.data import FileNode, LocalBackend, Repository
from aios.data.pack import pack_path
from tests.data.store.conftest import PASSPHRASE, new_repo, random_bytes, reopen


def _data_packs(repo: Repository) -> list[str]:
    return sorted(
        pack_id
        for pack_id, entries in repo.index.packs.items()
        if all(e.type == "data" for e in entries.values())
    )


def _versions(repo: Repository, tmp_path: Path) -> dict[str, dict[str, FileNode]]:
    """Three snapshots sharing some files; returns snapshot id → path → file node."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(6):
        (src / "d" / f"f{i}.bin").write_bytes(random_bytes(100 + i, 40_000 + 9_000 * i))
    result: dict[str, dict[str, FileNode]] = {}
    for version in range(3):
        (src / f"v{version}.bin").write_bytes(random_bytes(200 + version, 120_000))
        stored = repo.store_tree(src)
        snapshot = repo.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
        result[snapshot.id] = {
            path: node for path, node in repo.walk(stored.tree_id) if isinstance(node, FileNode)
        }
    return result


def test_bit_flips_are_named_by_snapshot_and_file(repo: Repository, tmp_path: Path) -> None:
    files = _versions(repo, tmp_path)
    data_packs = sorted(
        p
        for p, entries in repo.index.packs.items()
        if all(e.type == "data" for e in entries.values())
    )
    assert len(data_packs) >= 4
    rng = random.Random(5)
    flipped_blobs: set[str] = set()
    for pack_id in rng.sample(data_packs, 2):
        blob_id, entry = rng.choice(sorted(repo.index.packs[pack_id].items()))
        path = tmp_path / "repo" / pack_path(pack_id)
        data = bytearray(path.read_bytes())
        data[entry.offset + rng.randrange(entry.length)] ^= 1 << rng.randrange(8)
        path.write_bytes(data)
        flipped_blobs.add(blob_id)
    expected = {
        snapshot_id: sorted(p for p, n in nodes.items() if flipped_blobs & set(n.content))
        for snapshot_id, nodes in files.items()
    }
    expected = {k: v for k, v in expected.items() if v}
    assert expected

    verdict = reopen(tmp_path / "repo").check(read_data=True)
    assert not verdict.ok
    assert set(verdict.damaged_blobs) == flipped_blobs
    assert len(verdict.damaged_packs) == 2
    assert verdict.damaged_snapshots == expected

    snapshot_id, damaged_paths = next(iter(expected.items()))
    out = tmp_path / "out"
    restored = repo.restore(repo.load_snapshot(snapshot_id).tree, out)
    assert restored.damaged == damaged_paths
    for rel in files[snapshot_id]:
        if rel in damaged_paths:
            assert not (out / rel).exists()
        else:
            assert (out / rel).read_bytes() == (tmp_path / "src" / rel).read_bytes()


def test_a_structure_check_passes_a_healthy_repository(repo: Repository, tmp_path: Path) -> None:
    _versions(repo, tmp_path)
    assert repo.check().ok
    assert repo.check(read_data=True).ok


def test_a_missing_pack_is_reported_without_reading_data(repo: Repository, tmp_path: Path) -> None:
    files = _versions(repo, tmp_path)
    victim = next(
        p
        for p, entries in sorted(repo.index.packs.items())
        if all(e.type == "data" for e in entries.values())
    )
    (tmp_path / "repo" / pack_path(victim)).unlink()
    lost = set(repo.index.packs[victim])
    verdict = reopen(tmp_path / "repo").check()
    assert not verdict.ok
    assert any(victim in error for error in verdict.errors)
    for snapshot_id, nodes in files.items():
        hit = sorted(p for p, n in nodes.items() if lost & set(n.content))
        assert verdict.damaged_snapshots.get(snapshot_id, []) == hit


def _open(path: Path, *, encrypted: bool) -> Repository:
    return Repository.open(LocalBackend(path), PASSPHRASE if encrypted else None)


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "unencrypted"])
def test_a_truncated_pack_damages_only_the_blobs_past_the_cut(
    tmp_path: Path, encrypted: bool
) -> None:
    """A pack cut to half its size is damage of the blobs it held past the cut: check
    names them, restore writes every other file and leaves no temporary file behind."""
    repo = new_repo(tmp_path / "repo", encrypted=encrypted)
    files = _versions(repo, tmp_path)
    repo.release_lock()
    victim = max(_data_packs(repo), key=lambda p: len(repo.index.packs[p]))
    path = tmp_path / "repo" / pack_path(victim)
    cut = path.stat().st_size // 2
    path.write_bytes(path.read_bytes()[:cut])
    lost = {b for b, e in repo.index.packs[victim].items() if e.offset + e.length > cut}
    assert lost

    verdict = _open(tmp_path / "repo", encrypted=encrypted).check(read_data=True)

    assert not verdict.ok
    assert set(verdict.damaged_blobs) == lost
    assert verdict.damaged_packs == [victim]
    for snapshot_id, nodes in files.items():
        hit = sorted(p for p, n in nodes.items() if lost & set(n.content))
        assert verdict.damaged_snapshots.get(snapshot_id, []) == hit

    snapshot_id, nodes = next((s, n) for s, n in files.items() if s in verdict.damaged_snapshots)
    out = tmp_path / "out"
    reader = _open(tmp_path / "repo", encrypted=encrypted)
    restored = reader.restore(reader.load_snapshot(snapshot_id).tree, out)
    reader.release_lock()
    assert restored.damaged == verdict.damaged_snapshots[snapshot_id]
    assert restored.files == len(nodes) - len(restored.damaged)
    for rel in nodes:
        if rel in restored.damaged:
            assert not (out / rel).exists()
        else:
            assert (out / rel).read_bytes() == (tmp_path / "src" / rel).read_bytes()
    assert not [p for p in out.rglob("*") if ".aios-restore-" in p.name]
