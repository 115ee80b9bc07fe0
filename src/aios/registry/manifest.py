"""Directory artifacts: their manifest, and tar archives read and written safely.

A directory is stored as the blobs of its files plus a manifest, canonical JSON that
lists each file's relative path, sha256, size and executable bit; the directory's digest
is the manifest's sha256. The SDK and the server compute it the same way, so a download
is checked end to end. Only regular files are kept: an archive member that is a link, a
device, an absolute path or a path through ``..`` refuses the whole archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from aios.errors import InvalidInput

__all__ = [
    "CHUNK",
    "MANIFEST_KIND",
    "ManifestEntry",
    "copy_hashed",
    "extract_tar",
    "manifest_bytes",
    "parse_manifest",
    "scan_directory",
    "write_tar",
]

MANIFEST_KIND = "aios.model-directory/v1"
CHUNK = 1 << 20
MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file of a directory artifact: ``path`` is relative, with '/' separators."""

    path: str
    sha256: str
    size: int
    executable: bool = False


def manifest_bytes(entries: Sequence[ManifestEntry]) -> bytes:
    """The canonical manifest of ``entries`` (sorted by path): its sha256 names the
    directory, so the same files always give the same bytes."""
    files = [
        {"path": e.path, "sha256": e.sha256, "size": e.size, "executable": e.executable}
        for e in sorted(entries, key=lambda e: e.path)
    ]
    body = {"kind": MANIFEST_KIND, "files": files}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_manifest(data: bytes) -> list[ManifestEntry]:
    body: dict[str, Any] = json.loads(data)
    if body.get("kind") != MANIFEST_KIND:
        raise ValueError(f"not a {MANIFEST_KIND} manifest")
    return [
        ManifestEntry(f["path"], f["sha256"], int(f["size"]), bool(f["executable"]))
        for f in body["files"]
    ]


def copy_hashed(source: IO[bytes], target: IO[bytes], limit: int, what: str) -> tuple[str, int]:
    """Copies ``source`` to ``target`` in chunks; returns the sha256 and size. Raises
    InvalidInput naming ``what`` once more than ``limit`` bytes have come."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise InvalidInput(f"{what}: larger than the limit of {limit} bytes")
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest(), size


def member_path(name: str) -> PurePosixPath:
    """The relative path an archive member names; InvalidInput for one that would land
    outside the directory (absolute, ``..``) or is not a plain name."""
    path = PurePosixPath(name)
    parts = [p for p in path.parts if p != "."]
    if (
        path.is_absolute()
        or not parts
        or ".." in parts
        or len(parts) > MAX_DEPTH
        or any("\\" in p or any(ord(c) < 32 for c in p) for p in parts)
    ):
        raise InvalidInput(f"artifact: tar member {name!r} escapes the directory")
    return PurePosixPath(*parts)


def extract_tar(source: IO[bytes], dest: Path, *, max_bytes: int, max_files: int) -> None:
    """Extracts the tar archive read from ``source`` (any compression) into the new
    directory ``dest``, refusing links, devices, paths out of ``dest``, duplicates, and
    more than ``max_files`` files or ``max_bytes`` bytes in all."""
    dest.mkdir()
    seen: set[PurePosixPath] = set()
    total = 0
    try:
        with tarfile.open(fileobj=source, mode="r|*") as archive:
            for member in archive:
                relative = member_path(member.name)
                _check_not_under_a_file(member.name, relative, seen, itself=member.isdir())
                if member.isdir():
                    (dest / relative).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    raise InvalidInput(
                        f"artifact: tar member {member.name!r} is not a regular file or "
                        "directory (links and devices are refused)"
                    )
                if relative in seen:
                    raise InvalidInput(f"artifact: tar member {member.name!r} appears twice")
                seen.add(relative)
                if len(seen) > max_files:
                    raise InvalidInput(f"artifact: more than {max_files} files in the archive")
                total += member.size
                if total > max_bytes:
                    raise InvalidInput(f"artifact: unpacks to more than {max_bytes} bytes")
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_dir():
                    raise InvalidInput(f"artifact: tar member {member.name!r} is a directory too")
                data = archive.extractfile(member)
                assert data is not None  # a regular file always has data
                mode = 0o755 if member.mode & 0o111 else 0o644
                with os.fdopen(
                    os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb"
                ) as out:
                    copy_hashed(data, out, member.size, f"artifact: {member.name}")
    except tarfile.TarError as exc:
        raise InvalidInput(f"artifact: not a readable tar archive ({exc})") from None
    if not seen:
        raise InvalidInput("artifact: the archive holds no files")


def _check_not_under_a_file(
    name: str, relative: PurePosixPath, files: set[PurePosixPath], *, itself: bool
) -> None:
    """Raises InvalidInput when a member earlier in the archive was a file at a directory
    this member needs: a parent of ``relative``, or (``itself``, for a directory member)
    ``relative`` itself. ``a`` then ``a/b`` cannot both be written."""
    if itself and relative in files:
        raise InvalidInput(
            f"artifact: tar member {name!r} is a directory and, earlier in the archive, a file"
        )
    for directory in relative.parents:
        if directory in files:
            raise InvalidInput(
                f"artifact: tar member {name!r} is under {directory.as_posix()!r}, which is a "
                "file earlier in the archive"
            )


def _walk(root: Path) -> Iterator[Path]:
    """Every name under ``root`` that is not a real directory, in a stable order (a
    link to a directory is yielded, not followed)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames:
            if (Path(dirpath) / name).is_symlink():
                yield Path(dirpath) / name
        for name in sorted(filenames):
            yield Path(dirpath) / name


def scan_directory(root: Path) -> list[ManifestEntry]:
    """The manifest entries of the files under ``root``; InvalidInput for a link or any
    other thing that is not a regular file or directory."""
    entries = []
    for path in _walk(root):
        info = path.lstat()
        relative = path.relative_to(root).as_posix()
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"{relative}: not a regular file (links are not stored)")
        digest = hashlib.sha256()
        with path.open("rb") as data:
            while chunk := data.read(CHUNK):
                digest.update(chunk)
        executable = bool(info.st_mode & stat.S_IXUSR)
        entries.append(ManifestEntry(relative, digest.hexdigest(), info.st_size, executable))
    return entries


def write_tar(root: Path, entries: Sequence[ManifestEntry], out: IO[bytes]) -> None:
    """Writes the files ``entries`` name under ``root`` to ``out`` as an uncompressed
    tar archive with fixed owners and times, so the same files give the same bytes."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(entry.path)
            info.size = entry.size
            info.mode = 0o755 if entry.executable else 0o644
            info.mtime = 0
            info.uname = info.gname = ""
            with (root / entry.path).open("rb") as data:
                archive.addfile(info, data)
