"""Verifying a repository and rebuilding its index from the packs.

`check` follows restic: the structure pass loads every snapshot's trees and confirms
every blob they name is indexed in a pack that exists; `read_data` also reads every
pack, compares its SHA-256 with its name, and opens every blob against its id. Damage
is then reported where a user feels it: per snapshot, the file paths that cannot be
restored intact.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from aios.data.crypto import Damaged
from aios.data.index import Index, write_index
from aios.data.locks import acquire
from aios.data.model import CheckResult, DirNode, FileNode
from aios.data.pack import pack_path, read_pack_header
from aios.errors import NotFound

if TYPE_CHECKING:
    from aios.data.repository import Repository

__all__ = ["check", "rebuild_index", "stored_pack_ids"]


def stored_pack_ids(repo: Repository) -> set[str]:
    """Ids of the packs present on the backend."""
    return {path.rsplit("/", 1)[1] for path in repo.backend.list("data")}


def _read_data(repo: Repository, present: set[str], bad_packs: list[str]) -> set[str]:
    """Hashes every indexed pack and opens every blob; returns the ids of bad blobs."""
    bad_blobs: set[str] = set()
    for pack_id, entries in sorted(repo.index.packs.items()):
        if pack_id not in present:
            bad_blobs.update(b for b, e in entries.items() if repo.index.blobs[b] == e)
            continue
        data = repo.backend.get(pack_path(pack_id))
        if hashlib.sha256(data).hexdigest() != pack_id:
            bad_packs.append(pack_id)
        for blob_id, entry in entries.items():
            # Only the copy the index serves matters: a blob stored twice (a crashed
            # writer, then a rerun) is as good as its indexed copy.
            if repo.index.blobs[blob_id].pack != pack_id:
                continue
            try:
                repo.sealer.open_blob(data[entry.offset : entry.offset + entry.length], blob_id)
            except Damaged:
                bad_blobs.add(blob_id)
    return bad_blobs


def _damage_in_tree(
    repo: Repository, tree_id: str, usable: set[str] | None, bad: set[str]
) -> list[str]:
    """Paths under `tree_id` that cannot be restored intact."""
    damaged: list[str] = []

    def blob_ok(blob_id: str) -> bool:
        entry = repo.index.blobs.get(blob_id)
        if entry is None or blob_id in bad:
            return False
        return usable is None or entry.pack in usable

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
            elif isinstance(node, FileNode) and not all(blob_ok(c) for c in node.content):
                damaged.append(rel)

    visit("", tree_id)
    return damaged


def check(repo: Repository, *, read_data: bool = False) -> CheckResult:
    """See `Repository.check`."""
    repo.flush()
    lock = acquire(repo.backend, exclusive=False)
    try:
        repo.reload_index()
        errors = [f"index file {p} is unreadable" for p in repo.damaged_index_files]
        present = stored_pack_ids(repo)
        missing = sorted(set(repo.index.packs) - present)
        errors.extend(f"pack {p} named by the index is missing" for p in missing)
        bad_packs: list[str] = []
        bad_blobs: set[str] = set()
        if read_data:
            bad_blobs = _read_data(repo, present, bad_packs)
            errors.extend(f"pack {p} does not hash to its name" for p in bad_packs)
        damaged_snapshots: dict[str, list[str]] = {}
        for snapshot_id in repo.snapshot_ids():
            try:
                snapshot = repo.load_snapshot(snapshot_id)
            except (Damaged, NotFound):
                damaged_snapshots[snapshot_id] = ["<snapshot file>"]
                continue
            paths = _damage_in_tree(repo, snapshot.tree, present, bad_blobs)
            if paths:
                damaged_snapshots[snapshot_id] = sorted(paths)
        ok = not (errors or bad_blobs or damaged_snapshots)
        return CheckResult(
            ok=ok,
            damaged_packs=sorted(bad_packs),
            damaged_blobs=sorted(bad_blobs),
            damaged_snapshots=damaged_snapshots,
            errors=errors,
        )
    finally:
        lock.release()


def rebuild_index(repo: Repository) -> None:
    """Reads every pack's header and writes one index file naming them all, then removes
    the old index files (after, so a crash in between leaves two complete indexes).
    Packs whose header is unreadable are left out; their blobs are lost to the index."""
    repo.flush()
    lock = acquire(repo.backend, exclusive=True)
    try:
        index = Index()
        for pack_id in sorted(stored_pack_ids(repo)):
            try:
                index.add_pack(pack_id, read_pack_header(repo.backend, pack_id, repo.sealer))
            except Damaged:
                continue
        old = repo.backend.list("index")
        new_id = write_index(repo.backend, repo.sealer, index, sorted(index.packs))
        for path in old:
            if path != f"index/{new_id}":
                repo.backend.delete(path)
        repo.reload_index()
    finally:
        lock.release()
