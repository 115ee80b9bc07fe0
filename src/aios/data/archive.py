"""Storing files and directory trees: walk, chunk, deduplicate, seal, pack.

The walk runs first, so progress has its total; then files bigger than one chunk go to
a pool of worker threads while the calling thread stores the small ones. Chunking reads
a stream (never mmap, which dies with SIGBUS if a file shrinks while read), and the
expensive steps — BLAKE3, zstd, AES-GCM, SHA-256 of a full pack and the write —
release the GIL, so workers overlap on several cores.
Directory trees are stored bottom-up once their files are done.

A file may change while it is read (a log still written, a job's output still growing).
As restic and borg do, the open file is stat'ed before and after the read (size,
mtime, ctime, inode: one ``fstat`` more per file, none per chunk); if they differ, or
the bytes read are not the size it ends with, it is read again after 10 ms, then after
100 ms. A file that changes on every try is stored as last read and named in
``TreeResult.changed``; a file that disappears between the walk and its opening is
left out and named in ``TreeResult.vanished``. Neither stops the walk. A rewrite in
place that keeps the size inside one tick of the kernel's clock (a few ms) leaves the
stat unchanged and is not seen, as with restic and borg.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from io import FileIO
from pathlib import Path
from typing import TYPE_CHECKING

from pyfastcdc import FastCDC

from aios.data.model import DirNode, FileNode, Node, SymlinkNode, TreeResult
from aios.data.tree import encode_tree
from aios.errors import InvalidInput

if TYPE_CHECKING:
    from aios.data.repository import Repository

__all__ = ["StoredFile", "Vanished", "store_file", "store_tree"]

RETRY_DELAYS = (0.01, 0.1)
"""Seconds to wait before each re-read of a file that changed while it was read."""


class Vanished(InvalidInput):
    """The file (or a directory above it) was not there any more when it was opened."""


@dataclass(frozen=True)
class StoredFile:
    """A stored file's tree entry and what storing it added to the repository."""

    node: FileNode
    new_bytes: int
    new_chunks: int
    changed: bool = False
    """The file changed while it was read, on every try: `node` holds the last read."""


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is written, truncated or replaced."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _chunks(repo: Repository, handle: FileIO, size: int) -> Iterator[bytes | memoryview]:
    """Yields the file's chunks; each is valid only until the next is asked for."""
    params = repo.chunker
    if size <= params.min_size:
        yield handle.readall()
        return
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    for chunk in cdc.cut_stream(handle):
        yield chunk.data


def store_file(repo: Repository, path: Path | str) -> StoredFile:
    """Stores one regular file; raises `InvalidInput` if `path` is not one (`Vanished`
    if it is not there). The file is opened without following a symlink, and checked on
    its descriptor: a tree the walk found may be changed under it (a job's outputs, by
    another replica of its gang), and a link swapped in must not be read through (see
    docs/sandbox.md). A file that changes while it is read is read again (see the
    module's docstring); `changed` says it never held still."""
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        with open(os.open(path, flags), "rb", buffering=0) as handle:
            before = os.fstat(handle.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise InvalidInput(f"{path} is not a regular file")
            new_bytes = new_chunks = 0
            for delay in (*RETRY_DELAYS, None):
                content: list[str] = []
                size = 0
                for chunk in _chunks(repo, handle, before.st_size):
                    chunk_id, new = repo.store_blob("data", chunk)
                    content.append(chunk_id)
                    size += len(chunk)
                    if new:
                        new_bytes += len(chunk)
                        new_chunks += 1
                after = os.fstat(handle.fileno())
                changed = size != after.st_size or _identity(before) != _identity(after)
                if not changed or delay is None:
                    break
                time.sleep(delay)
                handle.seek(0)
                before = os.fstat(handle.fileno())
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise Vanished(f"{path} vanished before it was read") from None
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None
    node = FileNode(
        name=os.path.basename(path),
        mode=stat.S_IMODE(after.st_mode),
        size=size,
        mtime=after.st_mtime,
        content=tuple(content),
    )
    return StoredFile(node=node, new_bytes=new_bytes, new_chunks=new_chunks, changed=changed)


class _Progress:
    """Counts bytes done across worker threads and reports them."""

    def __init__(self, report: Callable[[int, int], None] | None) -> None:
        self.report = report
        self.total = 0
        self.done = 0
        self._mutex = threading.Lock()

    def add(self, size: int) -> None:
        if self.report is None:
            return
        with self._mutex:
            self.done += size
            done = self.done
        self.report(done, self.total)


@dataclass
class _File:
    """A regular file found by the walk, `rel` its path in the tree; `future` is set
    when a worker stores it."""

    path: str
    rel: str
    st: os.stat_result
    future: Future[StoredFile] | None = None


@dataclass
class _Dir:
    """A directory found by the walk: its own stat and its entries."""

    name: str
    st: os.stat_result
    entries: list[Node | _File | _Dir]


@dataclass
class _Walk:
    """What the walk found: the regular files to store, and the paths (in the tree) of
    entries gone before they could be read."""

    files: list[_File] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)


def _scan(path: str, rel: str, st: os.stat_result, walk: _Walk) -> Node | _File | _Dir | None:
    """Lists `path` (appending its regular files to `walk`); returns None for sockets,
    fifos and devices, which a dataset cannot hold, and for an entry that vanished."""
    if stat.S_ISLNK(st.st_mode):
        return SymlinkNode(
            name=os.path.basename(path),
            mode=stat.S_IMODE(st.st_mode),
            mtime=st.st_mtime,
            target=os.readlink(path),
        )
    if stat.S_ISREG(st.st_mode):
        found = _File(path, rel, st)
        walk.files.append(found)
        return found
    if stat.S_ISDIR(st.st_mode):
        entries: list[Node | _File | _Dir] = []
        with os.scandir(path) as listing:
            items = sorted(listing, key=lambda e: e.name)
        for item in items:
            inner = f"{rel}/{item.name}" if rel else item.name
            try:
                entry = _scan(item.path, inner, item.stat(follow_symlinks=False), walk)
            except FileNotFoundError:  # removed since the listing (or its directory was)
                walk.vanished.append(inner)
                continue
            if entry is not None:
                entries.append(entry)
        return _Dir(name=os.path.basename(path), st=st, entries=entries)
    return None


def _store_reporting(repo: Repository, found: _File, bar: _Progress) -> StoredFile:
    stored = store_file(repo, found.path)
    bar.add(stored.node.size)
    return stored


@dataclass
class _Totals:
    files: int = 0
    bytes: int = 0
    new_bytes: int = 0
    new_chunks: int = 0
    changed: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)


def _finish(
    repo: Repository, item: Node | _File | _Dir, totals: _Totals, bar: _Progress
) -> Node | None:
    """Stores what is left bottom-up: one-chunk files here, trees once their entries are
    done; multi-chunk files were handed to the workers and are waited for. Returns None
    for a file that vanished before it was opened."""
    if isinstance(item, _File):
        try:
            if item.future is None:
                stored = store_file(repo, item.path)
                bar.add(stored.node.size)
            else:
                stored = item.future.result()
        except Vanished:
            totals.vanished.append(item.rel)
            return None
        totals.files += 1
        totals.bytes += stored.node.size
        totals.new_bytes += stored.new_bytes
        totals.new_chunks += stored.new_chunks
        if stored.changed:
            totals.changed.append(item.rel)
        return stored.node
    if isinstance(item, _Dir):
        nodes = _finish_all(repo, item.entries, totals, bar)
        tree_id, _ = repo.store_blob("tree", encode_tree(nodes))
        return DirNode(
            name=item.name,
            mode=stat.S_IMODE(item.st.st_mode),
            mtime=item.st.st_mtime,
            subtree=tree_id,
        )
    return item


def _finish_all(
    repo: Repository, items: list[Node | _File | _Dir], totals: _Totals, bar: _Progress
) -> list[Node]:
    nodes = [_finish(repo, item, totals, bar) for item in items]
    return [node for node in nodes if node is not None]


def store_tree(
    repo: Repository,
    root: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
) -> TreeResult:
    """Stores `root` (a directory's contents, or a single file or symlink as the one
    entry of the tree) and returns the id of the top tree with counts, and the files
    that changed while they were read or vanished before (see the module's docstring).
    Raises `InvalidInput` if `root` itself cannot be read."""
    try:
        st = root.lstat()
    except OSError as error:
        raise InvalidInput(f"cannot read {root}: {error.strerror}") from None
    if workers < 1:
        raise InvalidInput(f"workers must be at least 1, not {workers}")
    walk = _Walk()
    rel = "" if stat.S_ISDIR(st.st_mode) else root.name
    try:
        scanned = _scan(os.fspath(root), rel, st, walk)
    except OSError as error:
        raise InvalidInput(f"cannot read {error.filename}: {error.strerror}") from None
    if scanned is None:
        raise InvalidInput(f"{root} is not a file, directory or symlink")
    bar = _Progress(progress)
    bar.total = sum(f.st.st_size for f in walk.files)
    totals = _Totals(vanished=walk.vanished)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aios-store") as pool:
        # A one-chunk file costs less than handing it to a thread (workers switching the
        # GIL at every tiny file made the walk crawl); bigger ones go to the workers.
        for found in walk.files:
            if found.st.st_size > repo.chunker.min_size:
                found.future = pool.submit(_store_reporting, repo, found, bar)
        top: list[Node | _File | _Dir] = scanned.entries if isinstance(scanned, _Dir) else [scanned]
        nodes = _finish_all(repo, top, totals, bar)
    if not isinstance(scanned, _Dir) and not nodes:
        raise InvalidInput(f"{root} vanished before it was read")
    tree_id, _ = repo.store_blob("tree", encode_tree(nodes))
    return TreeResult(
        tree_id=tree_id,
        files=totals.files,
        bytes=totals.bytes,
        new_bytes=totals.new_bytes,
        new_chunks=totals.new_chunks,
        changed=tuple(sorted(totals.changed)),
        vanished=tuple(sorted(totals.vanished)),
    )
