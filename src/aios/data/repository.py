"""A content-addressed, deduplicating, encrypted repository (restic's design).

`Repository` owns the keys, the in-memory index and the open packs; storing trees,
restoring, checking, collecting garbage and copying live in their own modules and
work through the blob methods here. Blobs are written to packs as they fill; the index
file naming a pack is written only after the pack, and a snapshot only after the index
naming every blob it reaches, so a writer killed at any moment leaves a readable
repository (at worst packs that no index names and temporary files, which `gc`
removes), and index files are written as packs are stored, so its rerun skips what it
stored (see `aios.data.packer`). The ``config``
file, its keys and its authenticator are `aios.data.config`'s.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aios.data import config as repo_config
from aios.data.backend import Backend
from aios.data.crypto import Damaged, Sealer, b64, wrap_key
from aios.data.index import Index, load_index, read_headers
from aios.data.locks import RepoLock, acquire
from aios.data.model import (
    BlobType,
    CheckResult,
    FileNode,
    GcResult,
    IndexRebuild,
    Node,
    RepoStats,
    RestoreResult,
    Snapshot,
    TreeResult,
)
from aios.data.pack import IndexEntry, pack_path
from aios.data.packer import Packer
from aios.data.tree import decode_tree
from aios.errors import InvalidInput, NotFound

__all__ = ["ChunkerParams", "Repository"]


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC bounds in bytes (restic: 512 KiB / 1 MiB / 8 MiB)."""

    min_size: int = 512 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 8 * 1024 * 1024


class Repository:
    """One repository on a `Backend`. Thread-safe for storing blobs; open it with
    `init` or `open`, never the constructor."""

    def __init__(
        self, backend: Backend, config: dict[str, Any], master_key: bytes | None, id_key: bytes
    ) -> None:
        self.backend = backend
        self.config = config
        self._master_key = master_key
        self.id_key = id_key
        self.sealer = Sealer(master_key, id_key)
        self.chunker = ChunkerParams(**config["chunker"])
        self._mutex = threading.Lock()
        self._lock: RepoLock | None = None
        index, paths, self.damaged_index_files = load_index(backend, self.sealer)
        self._index_files = set(paths)
        self.packer = Packer(backend, self.sealer, index, self._refresh_lock)
        # Blobs found in the headers of packs no index names, read once when a blob is
        # not in the index; used for reading only (see `_locate`).
        self._from_headers: Index | None = None

    # -- creating and opening ----------------------------------------------------------

    @classmethod
    def init(
        cls,
        backend: Backend,
        passphrase: str | None,
        *,
        encrypted: bool = True,
        chunker: ChunkerParams | None = None,
    ) -> Repository:
        """Creates a repository; raises `InvalidInput` if `backend` already holds one or
        an encrypted repository is asked for without a passphrase."""
        if backend.exists("config"):
            raise InvalidInput(f"{backend!r} already holds a repository")
        params = chunker or ChunkerParams()
        config, master_key, id_key = repo_config.create(
            passphrase,
            encrypted=encrypted,
            chunker={
                "min_size": params.min_size,
                "avg_size": params.avg_size,
                "max_size": params.max_size,
            },
        )
        backend.put("config", repo_config.encode(config))
        return cls(backend, config, master_key, id_key)

    @classmethod
    def open(cls, backend: Backend, passphrase: str | None) -> Repository:
        """Opens a repository; raises `NotFound` if there is none, `WrongPassphrase` if
        the passphrase does not open it, and `UntrustedConfig` if its config says it is
        unencrypted while a passphrase is given or fails its authenticator (see
        `aios.data.config`; a version-1 config is upgraded and stored here)."""
        try:
            raw = backend.get("config")
        except NotFound:
            raise NotFound(f"no repository at {backend!r} (create one first)") from None
        unlocked = repo_config.unlock(repo_config.decode(raw), passphrase)
        if unlocked.rewritten:
            backend.put("config", repo_config.encode(unlocked.config))
        return cls(backend, unlocked.config, unlocked.master_key, unlocked.id_key)

    @property
    def id(self) -> str:
        return str(self.config["id"])

    def adopt_chunking(self, other: Repository) -> None:
        """Takes `other`'s chunk-id key and chunker parameters (restic's
        ``--copy-chunker-params``) so that blob ids agree and copies deduplicate; only an
        empty repository may do this, since its ids would otherwise change."""
        if self.index.blobs or self.backend.list("data") or self.snapshot_ids():
            raise InvalidInput(
                "the destination already holds data chunked with another key; back up to "
                "an empty repository"
            )
        config = dict(self.config)
        config["chunker"] = dict(other.config["chunker"])
        if self._master_key is None:
            config["id_key"] = b64(other.id_key)
        else:
            config["id_key"] = wrap_key(self._master_key, other.id_key)
        config = repo_config.reseal(config, self._master_key)
        self.backend.put("config", repo_config.encode(config))
        self.config, self.id_key = config, other.id_key
        self.chunker = ChunkerParams(**config["chunker"])
        self.sealer = self.packer.sealer = Sealer(self._master_key, other.id_key)

    # -- locks ---------------------------------------------------------------------------

    def _hold_shared_lock(self) -> None:
        """Takes the writer's shared lock if not held. If an index file this object read
        is gone, a `gc` or `rebuild_index` ran since: the index is re-read, or dedup
        could trust a blob that gc removed."""
        with self._mutex:
            if self._lock is not None:
                return
            self._lock = acquire(self.backend, exclusive=False)
            known = self._index_files | self.packer.written_index_files
            if not known <= set(self.backend.list("index")):
                index, paths, self.damaged_index_files = load_index(self.backend, self.sealer)
                self.packer.index, self._index_files = index, set(paths)
                self.packer.written_index_files = set()
                self._from_headers = None

    def release_lock(self) -> None:
        """Gives up this writer's shared lock (after a snapshot is saved, or on close)."""
        with self._mutex:
            lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def close(self) -> None:
        """Writes what is open, stops the uploader threads and releases the lock."""
        self.packer.close()
        self.release_lock()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blobs ---------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        return self.packer.index

    @property
    def pack_size(self) -> int:
        """Bytes at which a pack is closed (16 MiB; tests make it small)."""
        return self.packer.pack_size

    @pack_size.setter
    def pack_size(self, size: int) -> None:
        self.packer.pack_size = size

    @property
    def written_packs(self) -> list[str]:
        """Ids of the packs this object has stored, oldest first."""
        return self.packer.written_packs

    def has_blob(self, blob_id: str) -> bool:
        return self.packer.knows(blob_id)

    def store_blob(self, blob_type: BlobType, plain: bytes | memoryview) -> tuple[str, bool]:
        """Stores a blob unless the repository has it; returns (id, whether it was new).
        Raises `Damaged` while an index file is unreadable: deduplication would miss
        every blob it named and store them all again."""
        self._hold_shared_lock()
        if self.damaged_index_files:
            raise Damaged(self.index_damage())
        blob_id = self.sealer.blob_id(plain)
        if not self.packer.claim(blob_id):
            return blob_id, False
        self.packer.add(blob_type, blob_id, self.sealer.seal(plain), len(plain))
        return blob_id, True

    def add_sealed(self, blob_type: BlobType, blob_id: str, sealed: bytes, raw: int) -> None:
        """Appends an already sealed blob (`gc` repacking) to the open pack of its type."""
        self.packer.add(blob_type, blob_id, sealed, raw)

    def write_open_packs(self) -> None:
        """Stores the open packs and no index file (`gc` writes one naming them)."""
        self.packer.write_open_packs()
        self.packer.forget_unindexed()

    def flush(self) -> None:
        """Stores the open packs, then an index file naming every pack not yet indexed."""
        self.packer.flush()

    def _refresh_lock(self) -> None:
        with self._mutex:
            if self._lock is not None:
                self._lock.refresh_if_due()

    def entry(self, blob_id: str) -> IndexEntry:
        """Where a blob is stored; raises `Damaged` if no index names it."""
        if self.packer.is_pending(blob_id):
            self.flush()
        try:
            return self.index.blobs[blob_id]
        except KeyError:
            raise Damaged(f"blob {blob_id[:12]} is not in the index") from None

    def index_damage(self) -> str | None:
        """Says in words that the index is damaged and how to repair it, or None when no
        index file is unreadable and no read had to fall back on the pack headers."""
        damaged = self.damaged_index_files
        fell_back = self._from_headers is not None and bool(self._from_headers.packs)
        if not damaged and not fell_back:
            return None
        what = (
            f"{len(damaged)} index file(s) unreadable ({', '.join(damaged)})"
            if damaged
            else "it does not name every pack that holds data"
        )
        return f"the index is damaged: {what}; run 'aios data repair index'"

    def _locate(self, blob_id: str) -> IndexEntry:
        """Where a blob is stored for reading: the index, else (a damaged or deleted
        index file) the headers of the packs no index names. Writers never trust the
        headers: a pack without an index file may be another writer's, not yet
        committed, and `gc` would remove it."""
        try:
            return self.entry(blob_id)
        except Damaged:
            with self._mutex:
                if self._from_headers is None:
                    unindexed = set(self.backend.list("data")) - {
                        pack_path(p) for p in self.index.packs
                    }
                    ids = [path.rsplit("/", 1)[1] for path in unindexed]
                    self._from_headers, _ = read_headers(self.backend, self.sealer, ids)
                found = self._from_headers.blobs.get(blob_id)
            if found is None:
                raise
            return found

    def load_blob(self, blob_id: str) -> bytes:
        """Returns a blob's plaintext, verified against its id; raises `Damaged`."""
        entry = self._locate(blob_id)
        try:
            sealed = self.backend.get_range(pack_path(entry.pack), entry.offset, entry.length)
        except NotFound:
            raise Damaged(
                f"pack {entry.pack[:12]} holding blob {blob_id[:12]} is missing"
            ) from None
        if len(sealed) != entry.length:
            raise Damaged(f"pack {entry.pack[:12]} holding blob {blob_id[:12]} is truncated")
        return self.sealer.open_blob(sealed, blob_id)

    def load_tree(self, tree_id: str) -> list[Node]:
        return decode_tree(self.load_blob(tree_id))

    # -- files and trees -------------------------------------------------------------------

    def store_file(self, path: Path) -> FileNode:
        """Chunks, deduplicates and stores one regular file; returns its tree entry."""
        from aios.data.archive import store_file

        return store_file(self, Path(path)).node

    def store_tree(
        self,
        root: Path,
        *,
        progress: Callable[[int, int], None] | None = None,
        workers: int = 2,
    ) -> TreeResult:
        """Stores a file or a directory tree (symlinks kept as links, never followed).
        `progress(bytes_done, bytes_total)` is called as files complete."""
        from aios.data.archive import store_tree

        return store_tree(self, Path(root), progress=progress, workers=workers)

    def walk(self, tree_id: str) -> Iterator[tuple[str, Node]]:
        """Yields (relative path, node) for every entry, a directory before its contents."""
        for name_node in self.load_tree(tree_id):
            yield name_node.name, name_node
            if name_node.type == "dir":
                for sub_path, sub_node in self.walk(name_node.subtree):
                    yield f"{name_node.name}/{sub_path}", sub_node

    def read_file(self, node: FileNode) -> Iterator[bytes]:
        """Yields a file's bytes chunk by chunk, each verified; raises `Damaged`."""
        for chunk_id in node.content:
            yield self.load_blob(chunk_id)

    def restore(
        self, tree_id: str, dest: Path, *, include: Callable[[str], bool] | None = None
    ) -> RestoreResult:
        """Writes a tree under `dest`; see `aios.data.restore.restore`."""
        from aios.data.restore import restore

        return restore(self, tree_id, Path(dest), include=include)

    # -- snapshots ------------------------------------------------------------------------

    def _put_snapshot(self, snapshot: Snapshot) -> None:
        body = {
            "id": snapshot.id,
            "time": snapshot.time.isoformat(),
            "tree": snapshot.tree,
            "paths": list(snapshot.paths),
            "tags": snapshot.tags,
            "meta": snapshot.meta,
        }
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        self.backend.put(f"snapshots/{snapshot.id}", self.sealer.seal(data))

    def save_snapshot(
        self, tree_id: str, *, paths: list[str], tags: dict[str, str], meta: dict[str, Any]
    ) -> Snapshot:
        """Flushes, then records `tree_id` as a snapshot, and releases the writer's lock
        (the snapshot now protects its blobs from `gc`)."""
        self.flush()
        self.entry(tree_id)  # the index itself, never the pack-header fallback
        snapshot = Snapshot(
            id=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            time=datetime.now(UTC),
            tree=tree_id,
            paths=tuple(paths),
            tags=dict(tags),
            meta=dict(meta),
        )
        self._put_snapshot(snapshot)
        self.release_lock()
        return snapshot

    def _read_snapshot(self, path: str) -> Snapshot:
        raw = json.loads(self.sealer.open(self.backend.get(path)))
        return Snapshot(
            id=str(raw["id"]),
            time=datetime.fromisoformat(raw["time"]),
            tree=str(raw["tree"]),
            paths=tuple(raw["paths"]),
            tags=dict(raw["tags"]),
            meta=dict(raw["meta"]),
        )

    def snapshot_ids(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for path in self.backend.list("snapshots")]

    def snapshots(self) -> list[Snapshot]:
        """Every readable snapshot, oldest first."""
        found = []
        for snapshot_id in self.snapshot_ids():
            try:
                found.append(self._read_snapshot(f"snapshots/{snapshot_id}"))
            except (Damaged, ValueError, KeyError, NotFound):
                continue
        return sorted(found, key=lambda s: (s.time, s.id))

    def _resolve(self, snapshot_id: str) -> str:
        prefix = snapshot_id.strip().lower()
        if not prefix:
            raise InvalidInput("a snapshot id is needed")
        matches = [s for s in self.snapshot_ids() if s.startswith(prefix)]
        if not matches:
            raise NotFound(f"no snapshot {snapshot_id!r} in this repository")
        if len(matches) > 1:
            raise InvalidInput(f"snapshot id {snapshot_id!r} is ambiguous: give more digits")
        return matches[0]

    def load_snapshot(self, snapshot_id: str) -> Snapshot:
        """Loads a snapshot by id or unique prefix; raises `NotFound`, or `InvalidInput`
        for an ambiguous prefix, or `Damaged` for an unreadable snapshot file."""
        full = self._resolve(snapshot_id)
        try:
            return self._read_snapshot(f"snapshots/{full}")
        except (ValueError, KeyError):
            raise Damaged(f"snapshot {full[:8]} is unreadable") from None

    def update_snapshot(
        self,
        snapshot_id: str,
        *,
        tags: dict[str, str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Snapshot:
        """Replaces a snapshot's tags and/or meta (one atomic write of its file)."""
        old = self.load_snapshot(snapshot_id)
        new = Snapshot(
            id=old.id,
            time=old.time,
            tree=old.tree,
            paths=old.paths,
            tags=dict(tags) if tags is not None else old.tags,
            meta=dict(meta) if meta is not None else old.meta,
        )
        self._put_snapshot(new)
        return new

    def put_snapshot(self, snapshot: Snapshot) -> None:
        """Stores a snapshot as given (used by `copy_to`, which keeps ids)."""
        self._put_snapshot(snapshot)

    def forget(self, snapshot_ids: list[str]) -> None:
        """Removes snapshots (their data stays until `gc`); all ids are resolved first,
        so one unknown id removes nothing."""
        resolved = [self._resolve(s) for s in snapshot_ids]
        for full in resolved:
            self.backend.delete(f"snapshots/{full}")

    # -- maintenance ----------------------------------------------------------------------

    def check(self, *, read_data: bool = False) -> CheckResult:
        """Verifies structure (and with `read_data` every byte); see `aios.data.check`."""
        from aios.data.check import check

        return check(self, read_data=read_data)

    def rebuild_index(self) -> IndexRebuild:
        """Rebuilds the index from the pack headers; see `aios.data.check`."""
        from aios.data.check import rebuild_index

        return rebuild_index(self)

    def gc(self) -> GcResult:
        """Removes unreferenced blobs and packs; see `aios.data.gc`."""
        from aios.data.gc import gc

        return gc(self)

    def reload_index(self) -> None:
        """Re-reads the index files (another writer may have added some)."""
        self.flush()
        index, paths, damaged = load_index(self.backend, self.sealer)
        with self._mutex:
            self.packer.index, self.damaged_index_files = index, damaged
            self._index_files = set(paths)
            self.packer.written_index_files = set()
            self._from_headers = None

    def stats(self) -> RepoStats:
        """Counts and sizes from the index and the snapshot list."""
        entries = list(self.index.blobs.values())
        return RepoStats(
            snapshots=len(self.snapshot_ids()),
            packs=len(self.index.packs),
            blobs=len(entries),
            stored_bytes=sum(e.length for e in entries),
            raw_bytes=sum(e.raw_length for e in entries),
            encrypted=self.sealer.encrypted,
        )
