"""An upload on its way into the blob store: received into a staging directory (a
file, or a tar archive unpacked into a directory and listed in a manifest) with its
digest, and moved into the store once the registration is accepted."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aios.registry.blobs import BlobStore
from aios.registry.manifest import (
    ManifestEntry,
    copy_hashed,
    extract_tar,
    manifest_bytes,
    scan_directory,
)
from aios.registry.specs import ArtifactKind

__all__ = ["MAX_FILES", "Staged", "keep", "stage_file", "stage_upload"]

MAX_FILES = 10_000
"""Files a directory artifact may hold."""


@dataclass(frozen=True, slots=True)
class Staged:
    """An artifact in staging: ``sha256`` is the file's, or the directory's manifest's;
    ``size`` is the bytes of its files."""

    path: Path
    sha256: str
    size: int
    entries: Sequence[ManifestEntry] | None = None
    manifest: bytes = b""


def stage_upload(target: Path, kind: ArtifactKind, upload: IO[bytes], max_bytes: int) -> Staged:
    """Receives ``upload`` at ``target``: copied as a file, or unpacked as a tar archive
    into a directory. InvalidInput for more than ``max_bytes`` or an unsafe archive."""
    if kind == "file":
        with target.open("xb") as out:
            digest, size = copy_hashed(upload, out, max_bytes, "artifact")
        return Staged(target, digest, size)
    extract_tar(upload, target, max_bytes=max_bytes, max_files=MAX_FILES)
    entries = scan_directory(target)
    manifest = manifest_bytes(entries)
    digest = hashlib.sha256(manifest).hexdigest()
    return Staged(target, digest, sum(e.size for e in entries), entries, manifest)


def stage_file(path: Path) -> Staged:
    """A file made in staging (a converted model), with its digest."""
    with path.open("rb") as data, open(os.devnull, "wb") as sink:
        digest, size = copy_hashed(data, sink, 1 << 62, path.name)
    return Staged(path, digest, size)


def keep(blobs: BlobStore, staged: Staged) -> None:
    """Moves a staged artifact's blobs into the store (content it holds already is not
    stored twice)."""
    if staged.entries is None:
        blobs.add(staged.path, staged.sha256)
        return
    for entry in staged.entries:
        blobs.add(staged.path / entry.path, entry.sha256)
    blobs.add_bytes(staged.manifest)
