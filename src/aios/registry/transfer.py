"""Artifacts on the client's side of the wire: a local file or directory packed for an
upload, and a download written into place only once its digest is checked.

A directory travels as an uncompressed tar archive of its regular files (a link in it
refuses the upload, naming it); its digest is the sha256 of its manifest, computed here
as the registry computes it, so a download is checked end to end.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from aios.errors import InvalidInput
from aios.registry.blobs import remove_tree
from aios.registry.manifest import extract_tar, manifest_bytes, scan_directory, write_tar
from aios.registry.specs import ArtifactKind, ModelVersionView

__all__ = ["artifact_target", "packed", "receive"]

MAX_FILES = 10_000


@contextmanager
def packed(path: Path) -> Iterator[tuple[ArtifactKind, IO[bytes]]]:
    """The artifact at ``path`` ready to upload: a file opened for reading, or a
    directory packed into a temporary tar archive. InvalidInput when ``path`` is
    missing, or is neither (a link inside a directory included)."""
    if path.is_file():
        with path.open("rb") as data:
            yield "file", data
        return
    if not path.is_dir():
        raise InvalidInput(f"{path}: no such file or directory")
    entries = scan_directory(path)
    if not entries:
        raise InvalidInput(f"{path}: the directory holds no files")
    with tempfile.TemporaryFile() as archive:
        write_tar(path, entries, archive)
        archive.seek(0)
        yield "directory", archive


def artifact_target(dest: Path, filename: str) -> Path:
    """Where a download lands: ``dest/filename`` when ``dest`` is a directory, else
    ``dest`` itself. InvalidInput when something is there already."""
    target = dest / filename if dest.is_dir() else dest
    if target.exists() or target.is_symlink():
        raise InvalidInput(f"{target}: already exists")
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent}: no such directory")
    return target


def receive(chunks: Iterable[bytes], version: ModelVersionView, target: Path) -> Path:
    """Writes a downloaded artifact (the file, or a directory's tar archive) to
    ``target`` once its digest matches ``version.sha256``; nothing is left at
    ``target`` when it does not."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    received = Path(name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if version.artifact == "file":
            _check(version, digest.hexdigest())
            os.replace(received, target)
            return target
        unpacked = received.with_name(received.name + ".d")
        try:
            with received.open("rb") as archive:
                extract_tar(archive, unpacked, max_bytes=version.size, max_files=MAX_FILES)
            manifest = manifest_bytes(scan_directory(unpacked))
            _check(version, hashlib.sha256(manifest).hexdigest())
            os.rename(unpacked, target)
        finally:
            remove_tree(unpacked)
        return target
    finally:
        received.unlink(missing_ok=True)


def _check(version: ModelVersionView, digest: str) -> None:
    if digest != version.sha256:
        raise InvalidInput(
            f"model {version.name} version {version.version}: the download's sha256 is "
            f"{digest}, the registry's {version.sha256}"
        )
