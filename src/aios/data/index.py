"""The index: which pack holds each blob, loaded from ``index/`` files into memory.

Index files are written only after the packs they name are stored, so every entry
points at a complete pack. An index file is sealed JSON
``{"packs": [{"id": ..., "blobs": [[type, id, offset, length, raw_length], ...]}]}``.
Several files may name the same blob (a writer crashed and a later run stored it
again); the first one seen wins and the other copy is garbage for `gc`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from aios.data.backend import Backend
from aios.data.crypto import Damaged, Sealer
from aios.data.pack import IndexEntry, parse_rows, read_pack_header
from aios.errors import Busy, NotFound

__all__ = ["LOAD_TRIES", "Index", "load_index", "read_headers", "write_index"]


class Index:
    """Blob id → entry, and pack id → the entries stored in that pack."""

    def __init__(self) -> None:
        self.blobs: dict[str, IndexEntry] = {}
        self.packs: dict[str, dict[str, IndexEntry]] = {}

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self.blobs

    def __len__(self) -> int:
        return len(self.blobs)

    def add_pack(self, pack_id: str, entries: dict[str, IndexEntry]) -> None:
        self.packs[pack_id] = entries
        for blob_id, entry in entries.items():
            self.blobs.setdefault(blob_id, entry)

    def pack_rows(self, pack_ids: Iterable[str]) -> list[dict[str, object]]:
        return [
            {"id": pack_id, "blobs": [entry.row(b) for b, entry in self.packs[pack_id].items()]}
            for pack_id in pack_ids
        ]


def write_index(backend: Backend, sealer: Sealer, index: Index, pack_ids: list[str]) -> str:
    """Stores an index file naming `pack_ids`; returns its id."""
    body = json.dumps({"packs": index.pack_rows(pack_ids)}, separators=(",", ":")).encode()
    sealed = sealer.seal(body)
    index_id = hashlib.sha256(sealed).hexdigest()
    backend.put(f"index/{index_id}", sealed)
    return index_id


LOAD_TRIES = 10
"""Listings `load_index` reads before giving up on an index that keeps changing."""


def load_index(backend: Backend, sealer: Sealer) -> tuple[Index, list[str], list[str]]:
    """Reads every index file; returns the index, the paths read and the paths of damaged
    index files (unreadable, or not hashing to their name: skipped, and
    `Repository.rebuild_index` recovers what they named).

    An index file that vanishes between the listing and its reading was replaced by a
    concurrent `gc` or `rebuild_index`, which writes its new index before it deletes
    the old ones: the folder is listed again and read anew, so the result is one
    listing's files, every one read. Raises `Busy` if that happens `LOAD_TRIES` times."""
    for _ in range(LOAD_TRIES):
        index = Index()
        paths = backend.list("index")
        damaged: list[str] = []
        try:
            for path in paths:
                try:
                    packs = _read_index_file(backend, sealer, path)
                except Damaged:
                    damaged.append(path)
                    continue
                for pack_id, entries in packs.items():
                    index.add_pack(pack_id, entries)
        except NotFound:
            continue
        return index, paths, damaged
    raise Busy(f"the index of {backend!r} kept changing while it was read; try again")


def _read_index_file(
    backend: Backend, sealer: Sealer, path: str
) -> dict[str, dict[str, IndexEntry]]:
    """One index file's packs; raises `Damaged` if it does not hash to its name (a
    flipped bit in an unencrypted index would otherwise point at the wrong bytes) or
    cannot be parsed."""
    sealed = backend.get(path)
    if hashlib.sha256(sealed).hexdigest() != path.rsplit("/", 1)[-1]:
        raise Damaged(f"{path} does not hash to its name")
    try:
        raw = json.loads(sealer.open(sealed))
        return {
            str(pack["id"]): parse_rows(str(pack["id"]), pack["blobs"]) for pack in raw["packs"]
        }
    except (ValueError, KeyError, TypeError) as error:
        raise Damaged(f"{path} is unreadable: {error}") from None


def read_headers(
    backend: Backend, sealer: Sealer, pack_ids: Iterable[str]
) -> tuple[Index, list[str]]:
    """An index of `pack_ids` read from their own headers, and the ids of the packs whose
    header is unreadable (left out)."""
    index = Index()
    unreadable: list[str] = []
    for pack_id in sorted(pack_ids):
        try:
            index.add_pack(pack_id, read_pack_header(backend, pack_id, sealer))
        except (Damaged, NotFound):
            unreadable.append(pack_id)
    return index, unreadable
