"""Where a repository's files live: a local directory or any fsspec filesystem.

A backend stores whole files by relative path (``config``, ``data/ab/<id>``, ...). The
contract every implementation keeps: `put` is atomic — a reader sees either no file or
the complete one, never a torn write — so a writer killed at any moment leaves only
complete files behind (and perhaps a temporary file that `list` never shows, and that
`temporaries` names for `gc` to remove).
"""

from __future__ import annotations

import abc
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aios.errors import InvalidInput, NotFound

__all__ = ["Backend", "FsspecBackend", "LocalBackend", "Temporary"]

_TEMP_MARK = ".tmp-"

# Object stores make a single PUT atomic: the object appears whole or not at all, so
# these are written in place. Other fsspec filesystems get a temporary key and a move.
_ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


@dataclass(frozen=True)
class Temporary:
    """A file a `put` is writing, or that a killed writer left half-written: its path
    (for `Backend.delete`), its length and when it was last written (seconds since the
    epoch)."""

    path: str
    size: int
    modified: float


def _is_temporary(name: str) -> bool:
    return _TEMP_MARK in name


class Backend(abc.ABC):
    """Files of one repository, addressed by slash-separated relative paths."""

    @abc.abstractmethod
    def put(self, path: str, data: bytes) -> None:
        """Stores `data` at `path` atomically, replacing any file there."""

    @abc.abstractmethod
    def get(self, path: str) -> bytes:
        """Returns the whole file; raises `NotFound` when there is none."""

    @abc.abstractmethod
    def get_range(self, path: str, offset: int, length: int) -> bytes:
        """Returns `length` bytes from `offset` (fewer only at the end of the file)."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Returns the paths of complete files under the folder `prefix`, sorted."""

    @abc.abstractmethod
    def delete(self, path: str) -> None:
        """Removes a file; removing one that is already gone is not an error."""

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """Says whether a complete file is stored at `path`."""

    def size(self, path: str) -> int:
        """Returns a file's length in bytes (backends override with a cheaper stat)."""
        return len(self.get(path))

    def temporaries(self) -> Sequence[Temporary]:
        """Returns the temporary files of `put`s anywhere in the repository, those being
        written now included (a backend whose writes need none has none: the default)."""
        return []


def _checked(path: str) -> str:
    parts = path.split("/")
    if not path or any(part in ("", ".", "..") for part in parts):
        raise InvalidInput(f"backend path {path!r} is not a plain relative path")
    return path


class LocalBackend(Backend):
    """A directory on a local filesystem; writes go to a temporary name, are fsynced,
    then renamed over the final name (and the directory fsynced), as restic does."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.root)!r})"

    def _path(self, path: str) -> Path:
        return self.root / _checked(path)

    def put(self, path: str, data: bytes) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{target.name}{_TEMP_MARK}{secrets.token_hex(6)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, path: str) -> bytes:
        try:
            return self._path(path).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{path} is not in the repository at {self.root}") from None

    def get_range(self, path: str, offset: int, length: int) -> bytes:
        try:
            with self._path(path).open("rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except FileNotFoundError:
            raise NotFound(f"{path} is not in the repository at {self.root}") from None

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        found: list[str] = []
        for folder, _dirs, files in os.walk(base):
            rel = Path(folder).relative_to(self.root).as_posix()
            found.extend(f"{rel}/{name}" for name in files if not _is_temporary(name))
        return sorted(found)

    def temporaries(self) -> Sequence[Temporary]:
        found: list[Temporary] = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if not _is_temporary(name):
                    continue
                path = Path(folder) / name
                try:
                    stat = path.stat()
                except FileNotFoundError:  # its put has just renamed or removed it
                    continue
                rel = path.relative_to(self.root).as_posix()
                found.append(Temporary(rel, stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda t: t.path)

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def size(self, path: str) -> int:
        return self._path(path).stat().st_size


class FsspecBackend(Backend):
    """Any fsspec filesystem, e.g. ``s3://bucket/prefix`` through s3fs.

    Atomicity: on object stores (S3, GCS, Azure) one PUT is atomic, so files are
    written in place; every name the repository writes is write-once (content-addressed)
    except ``config`` and snapshot files, whose replacement is a single atomic PUT too.
    On other filesystems a file is written under a temporary name and moved.
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec

        self.url = url.rstrip("/")
        # A fresh filesystem object: fsspec's instance cache keys on the arguments only,
        # and would hand back one bound to an earlier environment's endpoint and
        # credentials (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID…).
        options = {"skip_instance_cache": True} | storage_options
        fs, root = fsspec.core.url_to_fs(self.url, **options)
        self.fs: Any = fs
        self.root: str = str(root).rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._atomic_put = protocol in _ATOMIC_PUT_PROTOCOLS

    def __repr__(self) -> str:
        return f"FsspecBackend({self.url!r})"

    def _path(self, path: str) -> str:
        return f"{self.root}/{_checked(path)}"

    def put(self, path: str, data: bytes) -> None:
        target = self._path(path)
        if self._atomic_put:
            self.fs.pipe_file(target, data)
            return
        temp = f"{target}{_TEMP_MARK}{secrets.token_hex(6)}"
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(temp, data)
        self.fs.mv(temp, target)

    def get(self, path: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(path)))
        except FileNotFoundError:
            raise NotFound(f"{path} is not in the repository at {self.url}") from None

    def get_range(self, path: str, offset: int, length: int) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(path), start=offset, end=offset + length))
        except FileNotFoundError:
            raise NotFound(f"{path} is not in the repository at {self.url}") from None

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        # Another process may have written since this filesystem cached a listing.
        self.fs.invalidate_cache(base)
        try:
            names = self.fs.find(base, withdirs=False)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        rels = (str(name)[start:] for name in names)
        return sorted(rel for rel in rels if not _is_temporary(rel.rsplit("/", 1)[-1]))

    def temporaries(self) -> Sequence[Temporary]:
        if self._atomic_put:
            return []
        self.fs.invalidate_cache(self.root)
        try:
            infos = self.fs.find(self.root, withdirs=False, detail=True)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        found: list[Temporary] = []
        for name, info in infos.items():
            rel = str(name)[start:]
            if not _is_temporary(rel.rsplit("/", 1)[-1]):
                continue
            try:
                modified = self.fs.modified(str(name)).timestamp()
            except FileNotFoundError:  # its put has just moved it
                continue
            except NotImplementedError:  # a filesystem keeping no times: just written
                modified = time.time()
            found.append(Temporary(rel, int(info.get("size") or 0), modified))
        return sorted(found, key=lambda t: t.path)

    def delete(self, path: str) -> None:
        try:
            self.fs.rm_file(self._path(path))
        except FileNotFoundError:
            return

    def exists(self, path: str) -> bool:
        return bool(self.fs.isfile(self._path(path)))

    def size(self, path: str) -> int:
        return int(self.fs.size(self._path(path)))
