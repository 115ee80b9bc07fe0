"""Garbage collection: drop what no snapshot reaches, as `restic prune` does.

Under an exclusive lock (so no writer is between storing blobs and saving the snapshot
that names them): mark every blob reachable from a snapshot; delete packs with none of
them; repack packs with some (their used blobs copied, still sealed, into new packs);
write one new index naming what is kept, delete the old index files, and only then the
old packs. A crash at any step leaves a readable repository: at worst packs that no
index names, which the next gc deletes. Last, the temporary files of writes killed
midway go, once no write has touched them for `TEMPORARY_GRACE`: the exclusive lock
keeps writers out, but a process taking a lock writes one (a temporary and a rename),
and a slow filesystem may still be writing a put that began before a lock went stale.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aios.data.check import stored_pack_ids
from aios.data.crypto import Damaged
from aios.data.index import Index, write_index
from aios.data.locks import acquire, stale_locks
from aios.data.model import DirNode, FileNode, GcResult
from aios.data.pack import pack_path

if TYPE_CHECKING:
    from aios.data.repository import Repository

__all__ = ["TEMPORARY_GRACE", "gc", "referenced_blobs"]

TEMPORARY_GRACE = 60.0
"""Seconds since its last write after which a temporary file is a killed write's."""


def referenced_blobs(repo: Repository, tree_ids: list[str]) -> set[str]:
    """Every tree and chunk id reachable from `tree_ids` (raises `Damaged` if a tree is
    unreadable: collecting garbage from a damaged repository could delete the repair)."""
    seen: set[str] = set()
    stack = list(tree_ids)
    while stack:
        tree_id = stack.pop()
        if tree_id in seen:
            continue
        seen.add(tree_id)
        for node in repo.load_tree(tree_id):
            if isinstance(node, DirNode):
                stack.append(node.subtree)
            elif isinstance(node, FileNode):
                seen.update(node.content)
    return seen


def gc(repo: Repository) -> GcResult:
    """See `Repository.gc`; raises `Busy` while another process holds a lock, and
    `Damaged` (deleting nothing) while the index is damaged."""
    repo.flush()
    repo.release_lock()
    for path in stale_locks(repo.backend):
        repo.backend.delete(path)
    lock = acquire(repo.backend, exclusive=True)
    try:
        repo.reload_index()
        index = repo.index
        old_index = repo.backend.list("index")
        written_before = len(repo.written_packs)
        used = referenced_blobs(repo, [s.tree for s in repo.snapshots()])
        # A damaged index would make live packs look unreferenced, and gc delete them.
        if repo.damaged_index_files or not used <= index.blobs.keys():
            raise Damaged(
                (
                    repo.index_damage()
                    or "the index is damaged: snapshots use blobs it does "
                    "not name; run 'aios data repair index'"
                )
                + " before collecting garbage"
            )
        present = stored_pack_ids(repo)
        drop: list[str] = sorted(present - set(index.packs))
        keep: list[str] = []
        repacked = removed_blobs = kept_blobs = 0
        for pack_id, entries in sorted(index.packs.items()):
            live = [b for b, e in entries.items() if b in used and index.blobs[b] == e]
            removed_blobs += len(entries) - len(live)
            kept_blobs += len(live)
            if len(live) == len(entries) and pack_id in present:
                keep.append(pack_id)
                continue
            drop.append(pack_id)
            if live and pack_id in present:
                repacked += 1
                data = repo.backend.get(pack_path(pack_id))
                for blob_id in live:
                    entry = entries[blob_id]
                    sealed = data[entry.offset : entry.offset + entry.length]
                    repo.add_sealed(entry.type, blob_id, sealed, entry.raw_length)
        # The repacked blobs get no index file of their own: the full index below names
        # them with everything kept.
        repo.write_open_packs()
        freed = sum(repo.backend.size(pack_path(p)) for p in drop if p in present)
        kept = Index()
        for pack_id in keep + repo.written_packs[written_before:]:
            kept.add_pack(pack_id, index.packs[pack_id])
        new_id = write_index(repo.backend, repo.sealer, kept, sorted(kept.packs))
        # Repacking past `INDEX_BYTES` wrote index files of its own; the new one names
        # their packs too.
        for path in set(old_index) | repo.packer.written_index_files:
            if path != f"index/{new_id}":
                repo.backend.delete(path)
        for pack_id in drop:
            repo.backend.delete(pack_path(pack_id))
        stale = [
            t for t in repo.backend.temporaries() if time.time() - t.modified >= TEMPORARY_GRACE
        ]
        for temporary in stale:
            repo.backend.delete(temporary.path)
        repo.reload_index()
        return GcResult(
            removed_packs=len(drop),
            repacked_packs=repacked,
            removed_blobs=removed_blobs,
            kept_blobs=kept_blobs,
            freed_bytes=freed + sum(t.size for t in stale),
            removed_temporaries=len(stale),
        )
    finally:
        lock.release()
