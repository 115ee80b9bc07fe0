"""Storing files and directory trees: walk, chunk, deduplicate, seal, pack.

The walk runs first, so progress has its total; then files bigger than one chunk go to
a pool of worker threads while the calling thread stores the small ones. Chunking reads
a stream (never mmap, which dies with SIGBUS if a file shrinks while read), and the
expensive steps — BLAKE3, zstd, AES-GCM, SHA-256 of a full pack and the write —
release the GIL, so workers overlap on several cores.
Directory trees are stored bottom-up once their files are done.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import TYPE_CHECKING

from pyfastcdc import FastCDC

from aios.data.model import DirNode, FileNode, Node, SymlinkNode, TreeResult
from aios.data.tree import encode_tree
from aios.errors import InvalidInput

if TYPE_CHECKING:
    from aios.data.repository import Repository

__all__ = ["StoredFile", "store_file", "store_tree"]

_READ_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    """A stored file's tree entry and what storing it added to the repository."""

    node: FileNode
    new_bytes: int
    new_chunks: int


def _chunks(repo: Repository, handle: FileIO, size: int) -> Iterator[bytes | memoryview]:
    """Yields the file's chunks; each is valid only until the next is asked for."""
    params = repo.chunker
    if size <= params.min_size:
        yield handle.readall()
        return
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    for chunk in cdc.cut_stream(handle):
        yield chunk.data


def store_file(repo: Repository, path: Path | str, st: os.stat_result | None = None) -> StoredFile:
    """Stores one regular file; raises `InvalidInput` if `path` is not one. The file is
    opened without following a symlink, and checked on its descriptor: a tree the walk
    found may be changed under it (a job's outputs, by another replica of its gang), and
    a link swapped in must not be read through (see docs/sandbox.md)."""
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        with open(os.open(path, flags), "rb", buffering=0) as handle:
            opened = os.fstat(handle.fileno())
            if not stat.S_ISREG(opened.st_mode):
                raise InvalidInput(f"{path} is not a regular file")
            st = st or opened
            content: list[str] = []
            size = new_bytes = new_chunks = 0
            for chunk in _chunks(repo, handle, st.st_size):
                chunk_id, new = repo.store_blob("data", chunk)
                content.append(chunk_id)
                size += len(chunk)
                if new:
                    new_bytes += len(chunk)
                    new_chunks += 1
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None
    node = FileNode(
        name=os.path.basename(path),
        mode=stat.S_IMODE(st.st_mode),
        size=size,
        mtime=st.st_mtime,
        content=tuple(content),
    )
    return StoredFile(node=node, new_bytes=new_bytes, new_chunks=new_chunks)


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
    """A regular file found by the walk; `future` is set when a worker stores it."""

    path: str
    st: os.stat_result
    future: Future[StoredFile] | None = None


@dataclass
class _Dir:
    """A directory found by the walk: its own stat and its entries."""

    name: str
    st: os.stat_result
    entries: list[Node | _File | _Dir]


def _scan(path: str, st: os.stat_result, files: list[_File]) -> Node | _File | _Dir | None:
    """Lists `path` (appending its regular files to `files`); returns None for sockets,
    fifos and devices, which a dataset cannot hold."""
    if stat.S_ISLNK(st.st_mode):
        return SymlinkNode(
            name=os.path.basename(path),
            mode=stat.S_IMODE(st.st_mode),
            mtime=st.st_mtime,
            target=os.readlink(path),
        )
    if stat.S_ISREG(st.st_mode):
        found = _File(path, st)
        files.append(found)
        return found
    if stat.S_ISDIR(st.st_mode):
        entries: list[Node | _File | _Dir] = []
        with os.scandir(path) as listing:
            items = sorted(listing, key=lambda e: e.name)
        for item in items:
            entry = _scan(item.path, item.stat(follow_symlinks=False), files)
            if entry is not None:
                entries.append(entry)
        return _Dir(name=os.path.basename(path), st=st, entries=entries)
    return None


def _store_reporting(repo: Repository, found: _File, bar: _Progress) -> StoredFile:
    stored = store_file(repo, found.path, found.st)
    bar.add(stored.node.size)
    return stored


@dataclass
class _Totals:
    files: int = 0
    bytes: int = 0
    new_bytes: int = 0
    new_chunks: int = 0


def _finish(repo: Repository, item: Node | _File | _Dir, totals: _Totals, bar: _Progress) -> Node:
    """Stores what is left bottom-up: one-chunk files here, trees once their entries are
    done; multi-chunk files were handed to the workers and are waited for."""
    if isinstance(item, _File):
        if item.future is None:
            stored = store_file(repo, item.path, item.st)
            bar.add(stored.node.size)
        else:
            stored = item.future.result()
        totals.files += 1
        totals.bytes += stored.node.size
        totals.new_bytes += stored.new_bytes
        totals.new_chunks += stored.new_chunks
        return stored.node
    if isinstance(item, _Dir):
        nodes = [_finish(repo, entry, totals, bar) for entry in item.entries]
        tree_id, _ = repo.store_blob("tree", encode_tree(nodes))
        return DirNode(
            name=item.name,
            mode=stat.S_IMODE(item.st.st_mode),
            mtime=item.st.st_mtime,
            subtree=tree_id,
        )
    return item


def store_tree(
    repo: Repository,
    root: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
) -> TreeResult:
    """Stores `root` (a directory's contents, or a single file or symlink as the one
    entry of the tree) and returns the id of the top tree with counts."""
    try:
        st = root.lstat()
    except OSError as error:
        raise InvalidInput(f"cannot read {root}: {error.strerror}") from None
    if workers < 1:
        raise InvalidInput(f"workers must be at least 1, not {workers}")
    files: list[_File] = []
    try:
        scanned = _scan(os.fspath(root), st, files)
    except OSError as error:
        raise InvalidInput(f"cannot read {error.filename}: {error.strerror}") from None
    if scanned is None:
        raise InvalidInput(f"{root} is not a file, directory or symlink")
    bar = _Progress(progress)
    bar.total = sum(f.st.st_size for f in files)
    totals = _Totals()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aios-store") as pool:
        # A one-chunk file costs less than handing it to a thread (workers switching the
        # GIL at every tiny file made the walk crawl); bigger ones go to the workers.
        for found in files:
            if found.st.st_size > repo.chunker.min_size:
                found.future = pool.submit(_store_reporting, repo, found, bar)
        top = scanned.entries if isinstance(scanned, _Dir) else [scanned]
        nodes = [_finish(repo, entry, totals, bar) for entry in top]
    tree_id, _ = repo.store_blob("tree", encode_tree(nodes))
    return TreeResult(
        tree_id=tree_id,
        files=totals.files,
        bytes=totals.bytes,
        new_bytes=totals.new_bytes,
        new_chunks=totals.new_chunks,
    )
