"""Writing a file so that a reader (or a crash) never sees half of it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Writes ``data`` to ``path`` through a temporary file beside it, then renames it
    over ``path``; with ``durable``, the bytes are fsynced before the rename, so after a
    crash the file is the old one or the new one, whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with partial.open("wb") as out:
        out.write(data)
        if durable:
            out.flush()
            os.fsync(out.fileno())
    partial.replace(path)
    return path
