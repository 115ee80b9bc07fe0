"""Backup: copying snapshots from one repository to another, incrementally.

The destination keeps its own master key (and may be unencrypted); it shares the
source's chunk-id key and chunker parameters, which an empty destination adopts on the
first copy (restic's ``init --copy-chunker-params``), so equal content has equal ids in
both and a later copy transfers only the blobs the destination lacks. Blobs are read a
pack at a time, verified, resealed with the destination's key and packed; snapshots
are written last, after the index that names their blobs, so an interrupted copy leaves
the destination consistent and the next copy carries on.
"""

from __future__ import annotations

from collections import defaultdict

from aios.data.gc import referenced_blobs
from aios.data.locks import acquire
from aios.data.model import CopyResult
from aios.data.pack import pack_path
from aios.data.repository import Repository

__all__ = ["copy_to"]


def copy_to(
    source: Repository, dest: Repository, snapshot_ids: list[str] | None = None
) -> CopyResult:
    """Copies the named snapshots (all when None) that `dest` does not have yet, with
    every blob they reach that `dest` lacks. Raises `InvalidInput` if `dest` holds data
    chunked with another id key, `NotFound` for an unknown snapshot id."""
    if dest.id_key != source.id_key:
        dest.adopt_chunking(source)
    wanted = (
        source.snapshots()
        if snapshot_ids is None
        else [source.load_snapshot(s) for s in snapshot_ids]
    )
    have = set(dest.snapshot_ids())
    todo = [s for s in wanted if s.id not in have]
    source_lock = acquire(source.backend, exclusive=False)
    try:
        dest.reload_index()
        needed = referenced_blobs(source, [s.tree for s in todo])
        missing = sorted(b for b in needed if not dest.has_blob(b))
        by_pack: dict[str, list[str]] = defaultdict(list)
        for blob_id in missing:
            by_pack[source.entry(blob_id).pack].append(blob_id)
        packs_before = len(dest.written_packs)
        stored = 0
        for pack_id, blob_ids in sorted(by_pack.items()):
            data = source.backend.get(pack_path(pack_id))
            for blob_id in blob_ids:
                entry = source.index.blobs[blob_id]
                plain = source.sealer.open_blob(
                    data[entry.offset : entry.offset + entry.length], blob_id
                )
                _, new = dest.store_blob(entry.type, plain)
                if new:
                    stored += entry.raw_length
        dest.flush()
        for snapshot in todo:
            dest.put_snapshot(snapshot)
        dest.release_lock()
        return CopyResult(
            snapshots=len(todo),
            blobs=len(missing),
            packs=len(dest.written_packs) - packs_before,
            bytes=stored,
            copied=tuple(s.id for s in todo),
        )
    finally:
        source_lock.release()
