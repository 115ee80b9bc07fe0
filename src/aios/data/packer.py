"""The write path of blobs: open packs, background uploads, index files after packs.

A `Packer` keeps one open pack per blob type. A full pack is handed to uploader
threads, so hashing it and writing it (an fsync locally, a PUT on S3) overlap with
chunking and sealing; at most `IN_FLIGHT` packs wait in memory before the caller waits.
A pack's blobs join the index once the pack is stored; until then their ids are
"pending", so a second copy of a chunk is never stored.

The index file naming a pack is written only after the pack: at `flush`, and mid-run
as soon as `INDEX_BYTES` of packs are stored that no index file names, or the oldest of
them has waited `INDEX_SECONDS` (checked as each pack is stored). That is what lets a
killed `aios data add` or `backup create` resume: a rerun finds the blobs of every
indexed pack and skips them, so it stores again only what the killed run had not
stored and its last ~32 MiB (or minute) of packs; with an index only every 32 packs
(512 MiB), as before, it started over. restic writes its index every few minutes for
the same reason; an index file per 32 MiB costs one small write (about 100 bytes per
blob, ~30 blobs per 32 MiB) and one more file for later opens to read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from aios.data.backend import Backend
from aios.data.crypto import Sealer
from aios.data.index import Index, write_index
from aios.data.model import BlobType
from aios.data.pack import PackWriter, pack_path

__all__ = ["INDEX_BYTES", "INDEX_SECONDS", "IN_FLIGHT", "PACK_SIZE", "Packer"]

PACK_SIZE = 16 * 1024 * 1024
INDEX_BYTES = 32 * 1024 * 1024
"""Stored pack bytes that no index file names yet, past which one is written mid-run."""
INDEX_SECONDS = 60.0
"""How long a stored pack may wait for an index file naming it (checked as packs are
stored)."""
UPLOADERS = 2
IN_FLIGHT = 4


class Packer:
    """Thread-safe: any number of threads may `claim` and `add` at once."""

    def __init__(
        self,
        backend: Backend,
        sealer: Sealer,
        index: Index,
        on_pack: Callable[[], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.sealer = sealer
        self.index = index
        self.pack_size = PACK_SIZE
        self.written_packs: list[str] = []
        self.written_index_files: set[str] = set()
        self._on_pack = on_pack
        self._mutex = threading.Lock()
        self._writers: dict[BlobType, PackWriter] = {}
        self._pending: set[str] = set()
        self._clock = clock
        # Stored packs no index file names yet, their bytes, and when the first was stored.
        self._unindexed: list[str] = []
        self._unindexed_bytes = 0
        self._unindexed_since = 0.0
        self._uploader: ThreadPoolExecutor | None = None
        self._uploads: list[Future[None]] = []
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)

    def knows(self, blob_id: str) -> bool:
        """True if the blob is indexed or waiting in a pack not yet stored."""
        with self._mutex:
            return blob_id in self.index or blob_id in self._pending

    def is_pending(self, blob_id: str) -> bool:
        return blob_id in self._pending

    def claim(self, blob_id: str) -> bool:
        """Marks a blob as about to be added; False if it is known already (store
        nothing). Claiming before sealing lets the expensive sealing run unlocked."""
        with self._mutex:
            if blob_id in self.index or blob_id in self._pending:
                return False
            self._pending.add(blob_id)
            return True

    def add(self, blob_type: BlobType, blob_id: str, sealed: bytes, raw_length: int) -> None:
        """Appends a sealed blob to the open pack of its type; uploads the pack when full."""
        full: PackWriter | None = None
        with self._mutex:
            self._pending.add(blob_id)
            writer = self._writers.setdefault(blob_type, PackWriter(blob_type))
            writer.add(blob_id, sealed, raw_length)
            if writer.size >= self.pack_size:
                full = self._writers.pop(blob_type)
        if full is not None:
            self._upload(full)

    def _upload(self, writer: PackWriter) -> None:
        self._slots.acquire()
        with self._mutex:
            if self._uploader is None:
                self._uploader = ThreadPoolExecutor(UPLOADERS, thread_name_prefix="aios-pack")
            self._uploads.append(self._uploader.submit(self._write_in_slot, writer))

    def _write_in_slot(self, writer: PackWriter) -> None:
        try:
            self._write(writer)
        finally:
            self._slots.release()

    def _write(self, writer: PackWriter) -> None:
        pack_id, data, entries = writer.finish(self.sealer)
        self.backend.put(pack_path(pack_id), data)
        with self._mutex:
            self.index.add_pack(pack_id, entries)
            self._pending.difference_update(entries)
            now = self._clock()
            if not self._unindexed:
                self._unindexed_since = now
            self._unindexed.append(pack_id)
            self._unindexed_bytes += len(data)
            self.written_packs.append(pack_id)
            due = (
                self._unindexed_bytes >= INDEX_BYTES or now - self._unindexed_since >= INDEX_SECONDS
            )
        self._on_pack()
        if due:
            self._write_unindexed()

    def _write_unindexed(self) -> None:
        with self._mutex:
            pack_ids, self._unindexed = self._unindexed, []
            self._unindexed_bytes = 0
        if pack_ids:
            index_id = write_index(self.backend, self.sealer, self.index, pack_ids)
            with self._mutex:
                self.written_index_files.add(f"index/{index_id}")

    def write_open_packs(self) -> None:
        """Stores every open pack and waits for all uploads; re-raises a failed write.
        Writes no index file for them (the caller, `gc`, writes one naming them)."""
        with self._mutex:
            writers = [w for w in self._writers.values() if len(w)]
            self._writers = {}
        for writer in writers:
            self._upload(writer)
        with self._mutex:
            uploads, self._uploads = self._uploads, []
        for upload in uploads:
            upload.result()

    def flush(self) -> None:
        """Stores the open packs, then an index file naming every pack not yet indexed."""
        self.write_open_packs()
        self._write_unindexed()

    def forget_unindexed(self) -> None:
        with self._mutex:
            self._unindexed = []
            self._unindexed_bytes = 0

    def close(self) -> None:
        """Flushes and stops the uploader threads (a later `add` starts new ones)."""
        self.flush()
        with self._mutex:
            uploader, self._uploader = self._uploader, None
        if uploader is not None:
            uploader.shutdown()
