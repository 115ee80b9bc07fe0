"""Changing a file on disk while the data store reads it, at a chosen moment.

A race left to the scheduler would pass or fail by luck; here the archive's chunk reader
(`aios.data.archive._chunks`) is wrapped so that, once the first chunk of the file being
watched has been read, a real writer thread changes the files on disk while the reader
waits for it; then the reader goes on. The reader's own checks (its `fstat` before and
after) see the change exactly as they would see another process's write.

    with interfere(monkeypatch, big, lambda: append(big, b"more")) as writer:
        version = store.add("ds", root)
    assert writer.changes == 3  # every read of `big` was interfered with
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aios.data import archive

if TYPE_CHECKING:
    from aios.data.repository import Repository

__all__ = ["Writer", "append", "interfere", "truncate"]


def append(path: Path, data: bytes) -> None:
    """Appends `data` to `path`, as a log or a growing output does."""
    with path.open("ab") as handle:
        handle.write(data)


def truncate(path: Path, size: int) -> None:
    """Cuts `path` to `size` bytes, as a rewrite that starts with O_TRUNC does."""
    os.truncate(path, size)


@dataclass
class Writer:
    """Runs `change` on a thread of its own each time the watched file is read, at most
    `times` times (None: every time); `changes` counts the runs, `reads` every read of
    the watched file begun."""

    change: Callable[[], None]
    times: int | None
    changes: int = 0
    reads: int = 0

    def wants(self) -> bool:
        return self.times is None or self.changes < self.times

    def run(self) -> None:
        failure: list[BaseException] = []

        def body() -> None:
            try:
                self.change()
            except BaseException as error:  # reported on the reader's thread
                failure.append(error)

        thread = threading.Thread(target=body, name="interfering-writer")
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the interfering writer did not finish"
        if failure:
            raise failure[0]
        self.changes += 1


@contextmanager
def interfere(
    monkeypatch: pytest.MonkeyPatch,
    watched: Path,
    change: Callable[[], None],
    times: int | None = None,
) -> Iterator[Writer]:
    """Within the block, each read of `watched` (the same inode) runs `change` on a
    writer thread after its first chunk is read, `times` times at most (None: on every
    read, so the file never holds still)."""
    inode = watched.stat().st_ino
    writer = Writer(change, times)
    original = archive._chunks

    def chunks(repo: Repository, handle: FileIO, size: int) -> Iterator[bytes | memoryview]:
        ours = os.fstat(handle.fileno()).st_ino == inode
        if ours:
            writer.reads += 1
        for number, chunk in enumerate(original(repo, handle, size)):
            yield chunk
            if number == 0 and ours and writer.wants():
                writer.run()

    with monkeypatch.context() as patch:
        patch.setattr(archive, "_chunks", chunks)
        yield writer
