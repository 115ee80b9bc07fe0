"""Verifying a repository and rebuilding its index from the packs.

`check` follows restic: the structure pass reads the index, confirms every pack it
names exists and is long enough for the blobs placed in it, loads every snapshot's
trees and confirms every blob they name is indexed in such a pack (a blob that only the
header of an unindexed pack names is damage of the index, not lost data, and is
reported as such); `read_data` also reads every
pack, compares its SHA-256 with its name, and opens every blob against its id. Damage
is then reported where a user feels it: per snapshot, the file paths that cannot be
restored intact.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from aios.data.crypto import Damaged
from aios.data.index import Index, read_headers, write_index
from aios.data.locks import acquire
from aios.data.model import CheckResult, DirNode, FileNode, IndexRebuild
from aios.data.pack import pack_path
from aios.errors import NotFound

if TYPE_CHECKING:
    from aios.data.repository import Repository

__all__ = ["check", "rebuild_index", "stored_pack_ids"]


def stored_pack_ids(repo: Repository) -> set[str]:
    """Ids of the packs present on the backend."""
    return {path.rsplit("/", 1)[1] for path in repo.backend.list("data")}


def _view(repo: Repository, present: set[str]) -> tuple[Index, list[str]]:
    """The index with, after it, the packs no index names read from their own headers
    (so damage to the index is told apart from lost data); returns it and the ids of
    those unindexed packs."""
    unindexed = sorted(present - set(repo.index.packs))
    from_headers, _unreadable = read_headers(repo.backend, repo.sealer, unindexed)
    view = Index()
    for source in (repo.index, from_headers):
        for pack_id, entries in source.packs.items():
            view.add_pack(pack_id, entries)
    return view, unindexed


def _short_packs(repo: Repository, view: Index, present: set[str]) -> dict[str, int]:
    """Packs shorter than the blobs the index places in them need: pack id → size."""
    short: dict[str, int] = {}
    for pack_id, entries in sorted(view.packs.items()):
        if pack_id not in present or not entries:
            continue
        size = repo.backend.size(pack_path(pack_id))
        if size < max(e.offset + e.length for e in entries.values()):
            short[pack_id] = size
    return short


def _read_data(repo: Repository, view: Index, present: set[str], bad_packs: list[str]) -> set[str]:
    """Hashes every known pack and opens every blob; returns the ids of bad blobs."""
    bad_blobs: set[str] = set()
    for pack_id, entries in sorted(view.packs.items()):
        if pack_id not in present:
            bad_blobs.update(b for b, e in entries.items() if view.blobs[b] == e)
            continue
        data = repo.backend.get(pack_path(pack_id))
        if hashlib.sha256(data).hexdigest() != pack_id:
            bad_packs.append(pack_id)
        for blob_id, entry in entries.items():
            # Only the copy the index serves matters: a blob stored twice (a crashed
            # writer, then a rerun) is as good as its indexed copy.
            if view.blobs[blob_id].pack != pack_id:
                continue
            try:
                repo.sealer.open_blob(data[entry.offset : entry.offset + entry.length], blob_id)
            except Damaged:
                bad_blobs.add(blob_id)
    return bad_blobs


def _damage_in_tree(
    repo: Repository, view: Index, tree_id: str, usable: set[str], bad: set[str]
) -> tuple[list[str], set[str]]:
    """Paths under `tree_id` that cannot be restored intact, and the blobs it uses that
    only a pack header (no index file) names."""
    damaged: list[str] = []
    unindexed: set[str] = set()

    def blob_ok(blob_id: str) -> bool:
        entry = view.blobs.get(blob_id)
        if entry is None or blob_id in bad or entry.pack not in usable:
            return False
        if blob_id not in repo.index.blobs:
            unindexed.add(blob_id)
        return True

    def visit(prefix: str, subtree: str) -> None:
        if not blob_ok(subtree):
            damaged.append(prefix.rstrip("/") or ".")
            return
        try:
            nodes = repo.load_tree(subtree)
        except Damaged:
            damaged.append(prefix.rstrip("/") or ".")
            return
        for node in nodes:
            rel = f"{prefix}{node.name}"
            if isinstance(node, DirNode):
                visit(f"{rel}/", node.subtree)
            elif isinstance(node, FileNode):
                # Every chunk is looked at (no short-circuit), so that each blob only a
                # pack header names is counted.
                usable_chunks = [blob_ok(c) for c in node.content]
                if not all(usable_chunks):
                    damaged.append(rel)

    visit("", tree_id)
    return damaged, unindexed


def check(repo: Repository, *, read_data: bool = False) -> CheckResult:
    """See `Repository.check`."""
    repo.flush()
    lock = acquire(repo.backend, exclusive=False)
    try:
        repo.reload_index()
        errors = [
            f"index file {p} is damaged (unreadable, or not hashing to its name)"
            for p in repo.damaged_index_files
        ]
        present = stored_pack_ids(repo)
        view, unindexed_packs = _view(repo, present)
        missing = sorted(set(repo.index.packs) - present)
        errors.extend(f"pack {p} named by the index is missing" for p in missing)
        bad_blobs: set[str] = set()
        short = _short_packs(repo, view, present)
        for pack_id, size in short.items():
            errors.append(f"pack {pack_id} is truncated: {size} bytes, shorter than its blobs")
            bad_blobs.update(
                b
                for b, e in view.packs[pack_id].items()
                if view.blobs[b] == e and e.offset + e.length > size
            )
        bad_packs: list[str] = list(short)
        if read_data:
            read_bad: list[str] = []
            bad_blobs |= _read_data(repo, view, present, read_bad)
            errors.extend(f"pack {p} does not hash to its name" for p in read_bad if p not in short)
            bad_packs = sorted(set(bad_packs) | set(read_bad))
        damaged_snapshots: dict[str, list[str]] = {}
        only_in_headers: set[str] = set()
        snapshot_ids = repo.snapshot_ids()
        for snapshot_id in snapshot_ids:
            try:
                snapshot = repo.load_snapshot(snapshot_id)
            except (Damaged, NotFound):
                damaged_snapshots[snapshot_id] = ["<snapshot file>"]
                continue
            paths, unindexed = _damage_in_tree(repo, view, snapshot.tree, present, bad_blobs)
            only_in_headers |= unindexed
            if paths:
                damaged_snapshots[snapshot_id] = sorted(paths)
        if only_in_headers:
            packs = sorted({view.blobs[b].pack for b in only_in_headers})
            errors.append(
                f"{len(only_in_headers)} blob(s) that snapshots use are in {len(packs)} "
                f"pack(s) no index names: {', '.join(p[:12] for p in packs)}"
            )
        index_damaged = bool(repo.damaged_index_files or only_in_headers)
        if index_damaged:
            errors.append(
                "the index is damaged; run 'aios data repair index' to rebuild it from the "
                "pack headers"
            )
        return CheckResult(
            ok=not (errors or bad_blobs or damaged_snapshots),
            damaged_packs=sorted(bad_packs),
            damaged_blobs=sorted(bad_blobs),
            damaged_snapshots=damaged_snapshots,
            errors=errors,
            index_damaged=index_damaged,
            unindexed_packs=unindexed_packs,
            snapshots=len(snapshot_ids),
            packs=len(present),
            blobs=len(view.blobs),
        )
    finally:
        lock.release()


def rebuild_index(repo: Repository) -> IndexRebuild:
    """Reads every pack's header and writes one index file naming them all, then removes
    the old index files (after, so a crash in between leaves two complete indexes).
    A pack whose header is unreadable (a truncated pack) keeps what a readable old index
    file said of it, so its intact blobs stay reachable; with neither it is left out and
    its blobs are lost to the index."""
    repo.flush()
    lock = acquire(repo.backend, exclusive=True)
    try:
        repo.reload_index()
        index, unreadable = read_headers(repo.backend, repo.sealer, stored_pack_ids(repo))
        lost: list[str] = []
        for pack_id in unreadable:
            if pack_id in repo.index.packs:
                index.add_pack(pack_id, repo.index.packs[pack_id])
            else:
                lost.append(pack_id)
        old = repo.backend.list("index")
        new_id = write_index(repo.backend, repo.sealer, index, sorted(index.packs))
        for path in old:
            if path != f"index/{new_id}":
                repo.backend.delete(path)
        repo.reload_index()
        return IndexRebuild(packs=len(index.packs), blobs=len(index.blobs), unreadable=lost)
    finally:
        lock.release()
