"""The registry's content-addressed store of artifacts on this machine's disk.

``$AIOS_HOME/registry`` holds ``blobs/sha256/<ab>/<digest>`` (each file once, whoever
registered it, read-only), ``tmp/`` (uploads being staged; emptied at start, as what a
crash left there was never registered) and ``views/<digest>/<name>`` (an artifact under
its own file or directory name, made of hard links to the blobs, for a loader to open).
A blob is written to ``tmp/``, fsynced and renamed into place, so a blob that exists is
whole.

Modes: every directory of the store itself (the root, ``blobs/sha256/<ab>``, ``tmp/``,
``views/<digest>``) is 0700, made so and tightened at every start, and that is what
keeps the host's other users out. What lies inside them stays readable by everyone:
blobs are 0444, and an artifact's own view (a file, or a directory artifact's tree of
0555 directories and 0444 files) the same, because a sandboxed serving replica runs as
its tenant's uid and is handed its artifact by a read-only bind mount, which only the
file's own mode then guards. Nothing in the store is writable after it is placed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from aios.registry.manifest import ManifestEntry

__all__ = ["BlobStore", "remove_tree"]

READ_ONLY = 0o444
EXECUTABLE = 0o555
PRIVATE = 0o700


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Removes ``path`` (a file or a tree), read-only directories included."""
    if not path.is_dir() or path.is_symlink():
        with suppress(FileNotFoundError):
            path.unlink()
        return
    for dirpath, _dirnames, _filenames in os.walk(path):
        with suppress(OSError):
            os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)


class BlobStore:
    """Blobs by sha256 under ``root``, staging for uploads, and read-only views."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.tmp = root / "tmp"
        self.views = root / "views"
        for directory in (self.blobs, self.tmp, self.views):
            directory.mkdir(PRIVATE, parents=True, exist_ok=True)
        # An earlier version made them with the default mode: tightened, with the
        # directories that hold blobs and views (not the views' own trees).
        for directory in (root, root / "blobs", self.blobs, self.tmp, self.views):
            directory.chmod(PRIVATE)
        for holder in (*self.blobs.iterdir(), *self.views.iterdir()):
            if holder.is_dir() and not holder.is_symlink():
                holder.chmod(PRIVATE)

    def clear_staging(self) -> None:
        """Removes uploads a crash left half-staged (none of them was registered)."""
        for leftover in self.tmp.iterdir():
            remove_tree(leftover)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh directory for one upload, removed with whatever is left in it."""
        path = self.new_stage()
        try:
            yield path
        finally:
            self.remove_stage(path)

    def new_stage(self) -> Path:
        """A fresh directory for one upload; :meth:`remove_stage` it after use."""
        return Path(tempfile.mkdtemp(dir=self.tmp, prefix="stage-"))

    def remove_stage(self, path: Path) -> None:
        """Removes a directory of :meth:`new_stage` with whatever is left in it."""
        remove_tree(path)

    def path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def add(self, source: Path, digest: str) -> None:
        """Moves the staged file ``source``, whose sha256 is ``digest``, into the store;
        when the store holds that content already, ``source`` is left where it is."""
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(PRIVATE, exist_ok=True)
        with source.open("rb") as data:
            os.fsync(data.fileno())
        os.chmod(source, READ_ONLY)
        os.replace(source, target)
        _fsync_dir(target.parent)

    def add_bytes(self, data: bytes) -> str:
        """Stores ``data`` (a manifest) and returns its sha256."""
        digest = hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        self.add(Path(name), digest)
        return digest

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def view(self, digest: str, name: str, entries: Sequence[ManifestEntry] | None) -> Path:
        """The artifact ``digest`` as ``views/<digest>/<name>``: a file (``entries`` is
        None) or a directory of the manifest's files, made on first use and read-only.

        The view is built under a temporary name beside its final one and renamed, so a
        loader never finds half of it, and two callers building it at once both end
        with the same whole view.
        """
        final = self.views / digest / name
        if final.exists():
            return final
        final.parent.mkdir(PRIVATE, exist_ok=True)
        if entries is None:
            building = final.parent / f".building-{os.getpid()}-{os.urandom(4).hex()}"
            _place(self.path(digest), building, executable=False)
            os.replace(building, final)
            return final
        tree = Path(tempfile.mkdtemp(dir=final.parent, prefix=".building-"))
        try:
            for entry in entries:
                target = tree / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                _place(self.path(entry.sha256), target, executable=entry.executable)
            _freeze(tree)
            try:
                os.rename(tree, final)
            except OSError:
                if not final.is_dir():
                    raise
        finally:
            remove_tree(tree)
        return final

    def discard(self, digests: Iterable[str]) -> None:
        """Removes blobs no version uses any more, and their views."""
        for digest in digests:
            remove_tree(self.views / digest)
            with suppress(FileNotFoundError):
                self.path(digest).unlink()


def _place(blob: Path, target: Path, executable: bool) -> None:
    """Puts ``blob`` at ``target``: a hard link (the blob is read-only already), or a
    read-only copy across file systems or for an executable file."""
    if not executable:
        try:
            os.link(blob, target)
            return
        except OSError:
            pass
    shutil.copyfile(blob, target)
    os.chmod(target, EXECUTABLE if executable else READ_ONLY)


def _freeze(tree: Path) -> None:
    """Makes the directories of ``tree`` read-only, deepest first."""
    for dirpath, _dirnames, _filenames in os.walk(tree, topdown=False):
        os.chmod(dirpath, EXECUTABLE)
