"""Pack files: blobs appended one after another, then a sealed header that lists them.

Layout: ``blob || blob || ... || sealed header || header length (4 bytes, little
endian)``. The header is a JSON list of ``[type, id, offset, length, raw_length]`` so a
lost index can be rebuilt from the packs alone. The pack id is the SHA-256 of the bytes
as stored, so anyone can verify a pack without the key.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import cast

from aios.data.backend import Backend
from aios.data.crypto import Damaged, Sealer
from aios.data.model import BlobType

__all__ = ["IndexEntry", "PackWriter", "pack_path", "read_pack_header"]

_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class IndexEntry:
    """Where one blob lives: `length` bytes sealed at `offset` of `pack`."""

    pack: str
    type: BlobType
    offset: int
    length: int
    raw_length: int

    def row(self, blob_id: str) -> list[object]:
        return [self.type, blob_id, self.offset, self.length, self.raw_length]


def pack_path(pack_id: str) -> str:
    """The backend path of a pack: ``data/<first two hex digits>/<id>``."""
    return f"data/{pack_id[:2]}/{pack_id}"


def parse_rows(pack_id: str, rows: list[list[object]]) -> dict[str, IndexEntry]:
    """Turns header or index rows into entries of `pack_id`."""
    entries: dict[str, IndexEntry] = {}
    for blob_type, blob_id, offset, length, raw_length in rows:
        entries[str(blob_id)] = IndexEntry(
            pack=pack_id,
            type=cast(BlobType, blob_type),
            offset=int(cast(int, offset)),
            length=int(cast(int, length)),
            raw_length=int(cast(int, raw_length)),
        )
    return entries


class PackWriter:
    """Collects sealed blobs of one type in memory until the pack is full.

    Not thread-safe: the repository calls `add` under its lock.
    """

    def __init__(self, blob_type: BlobType) -> None:
        self.type: BlobType = blob_type
        self._parts: list[bytes] = []
        self._rows: list[list[object]] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, blob_id: str, sealed: bytes, raw_length: int) -> None:
        self._rows.append([self.type, blob_id, self.size, len(sealed), raw_length])
        self._parts.append(sealed)
        self.size += len(sealed)

    def blob_ids(self) -> list[str]:
        return [str(row[1]) for row in self._rows]

    def finish(self, sealer: Sealer) -> tuple[str, bytes, dict[str, IndexEntry]]:
        """Returns (pack id, pack bytes, entries) with the header appended."""
        header = sealer.seal(json.dumps(self._rows, separators=(",", ":")).encode())
        self._parts.extend([header, _LENGTH.pack(len(header))])
        data = b"".join(self._parts)
        pack_id = hashlib.sha256(data).hexdigest()
        return pack_id, data, parse_rows(pack_id, self._rows)


def read_pack_header(backend: Backend, pack_id: str, sealer: Sealer) -> dict[str, IndexEntry]:
    """Reads the blob list from a pack's own header; raises `Damaged` if it is unreadable."""
    path = pack_path(pack_id)
    size = backend.size(path)
    if size < _LENGTH.size:
        raise Damaged(f"pack {pack_id[:12]} is truncated")
    (length,) = _LENGTH.unpack(backend.get_range(path, size - _LENGTH.size, _LENGTH.size))
    if length > size - _LENGTH.size:
        raise Damaged(f"pack {pack_id[:12]} has a corrupt header length")
    sealed = backend.get_range(path, size - _LENGTH.size - length, length)
    try:
        return parse_rows(pack_id, json.loads(sealer.open(sealed)))
    except (ValueError, TypeError) as error:
        raise Damaged(f"pack {pack_id[:12]} has an unreadable header: {error}") from None
