"""Concurrent adds to one dataset: every add gets its own version, numbered 1..N.

Each writer opens its own `Repository` (as two `aios data add` processes would), so
nothing in memory is shared: only the backend's files order them.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from aios.data.backend import Backend, FsspecBackend, LocalBackend
from aios.data.datasets import DatasetVersion, DataStore
from aios.data.labelsets import LabelFormat, LabelStore
from aios.data.repository import Repository

WRITERS = 6


class Numbered(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Numbered)


def _sources(tmp_path: Path, count: int) -> list[Path]:
    sources = []
    for i in range(count):
        source = tmp_path / f"src{i}"
        source.mkdir()
        (source / "part.txt").write_text(f"writer {i}\n" * (i + 1))
        sources.append(source)
    return sources


def _in_threads(count: int, work: Callable[[int], V]) -> list[V]:
    """Runs `work(i)` in `count` threads released together; returns what each returned,
    or re-raises the first failure."""
    start = threading.Barrier(count)
    results: list[V | BaseException | None] = [None] * count

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as error:  # handed to the test thread
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done: list[V] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        done.append(result)
    return done


@pytest.mark.parametrize("kind", ["local", "fsspec-file", "fsspec-memory"])
def test_threads_with_their_own_repositories_get_distinct_consecutive_versions(
    tmp_path: Path, kind: str
) -> None:
    def backend() -> Backend:
        if kind == "local":
            return LocalBackend(tmp_path / "repo")
        if kind == "fsspec-file":
            return FsspecBackend(f"file://{tmp_path / 'repo'}")
        return FsspecBackend(f"memory://aios-concurrent-{tmp_path.name}")

    Repository.init(backend(), None, encrypted=False).close()
    sources = _sources(tmp_path, WRITERS)

    def add(i: int) -> DatasetVersion:
        with Repository.open(backend(), None) as repo:
            return DataStore(repo).add("digits", sources[i], message=f"writer {i}")

    added = _in_threads(WRITERS, add)
    assert sorted(v.version for v in added) == list(range(1, WRITERS + 1))
    with Repository.open(backend(), None) as repo:
        stored = DataStore(repo).versions("digits")
    assert [v.version for v in stored] == list(range(1, WRITERS + 1))
    assert {v.snapshot for v in stored} == {v.snapshot for v in added}
    assert not repo.backend.list("locks")  # every naming lock was given back


_ADDER = """
import sys
from pathlib import Path
from aios.data.backend import LocalBackend
from aios.data.datasets import DataStore
from aios.data.repository import Repository

with Repository.open(LocalBackend(sys.argv[1]), None) as repo:
    store = DataStore(repo)
    print("ready", flush=True)
    sys.stdin.readline()  # every writer starts its add at once
    print(store.add("digits", Path(sys.argv[2])).version, flush=True)
"""


def test_processes_adding_at_once_get_distinct_consecutive_versions(tmp_path: Path) -> None:
    """As two `aios data add` of one dataset would: separate processes, one directory."""
    Repository.init(LocalBackend(tmp_path / "repo"), None, encrypted=False).close()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _ADDER, str(tmp_path / "repo"), str(source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for source in _sources(tmp_path, 4)
    ]
    for writer in writers:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    versions = []
    for writer in writers:
        out, _ = writer.communicate()
        assert writer.returncode == 0
        versions.append(int(out))
    assert sorted(versions) == [1, 2, 3, 4]


def test_label_sets_imported_at_once_get_distinct_consecutive_versions(tmp_path: Path) -> None:
    Repository.init(LocalBackend(tmp_path / "repo"), None, encrypted=False).close()
    with Repository.open(LocalBackend(tmp_path / "repo"), None) as repo:
        DataStore(repo).add("digits", _sources(tmp_path, 1)[0])
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"file": "part.txt", "labels": ["cat"]}\n')

    def add(_: int) -> Numbered:
        with Repository.open(LocalBackend(tmp_path / "repo"), None) as repo:
            store = LabelStore(DataStore(repo))
            return store.import_labels("digits", 1, "cats", labels, LabelFormat.JSONL)

    added = _in_threads(4, add)
    assert sorted(v.version for v in added) == [1, 2, 3, 4]
