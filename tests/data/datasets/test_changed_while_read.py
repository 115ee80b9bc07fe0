"""Files that change while ``DataStore.add`` reads them, or vanish before: a real writer
thread appends to, truncates or removes a file at a fixed point of the read
(:mod:`tests.data.interference`); the version is kept and says what it did not read whole."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.data.datasets import DataStore
from aios.data.safety import check_source
from tests.data.interference import append, interfere, truncate

BIG = 2 * 1024 * 1024  # several chunks with the default chunker: read by a worker thread


def _source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "log.bin").write_bytes(random.Random(1).randbytes(BIG))
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("beta\n")
    (root / "c.txt").write_text("gamma\n")
    return root


def _restored(store: DataStore, tmp_path: Path, name: str, path: str) -> bytes:
    dest = tmp_path / f"restored-{name}"
    store.get(name, "latest", dest)
    return (dest / path).read_bytes()


def test_a_file_appended_to_during_every_read_is_stored_as_read_and_named(
    store: DataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that grows during each of its three reads is stored as the last read saw
    it (a prefix of what it became); the version is kept, recorded as not complete and
    names it, and the files that held still are not named."""
    root = _source(tmp_path)
    log = root / "sub" / "log.bin"
    with interfere(monkeypatch, log, lambda: append(log, b"x" * 4096)) as writer:
        version = store.add("ds", root)
    assert writer.reads == 3
    assert (version.complete, version.changed, version.vanished) == (False, ("sub/log.bin",), ())
    kept = store.version("ds", 1)  # as the snapshot records it
    assert (kept.complete, kept.changed, kept.vanished) == (False, ("sub/log.bin",), ())
    assert kept.files == 4
    stored = _restored(store, tmp_path, "ds", "sub/log.bin")
    assert len(stored) >= BIG
    assert log.read_bytes().startswith(stored)


def test_a_file_truncated_during_every_read_is_named(
    store: DataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file cut to half its size while each read is under way is named as changed,
    and what is stored is a prefix of what it held."""
    root = _source(tmp_path)
    log = root / "sub" / "log.bin"
    original = log.read_bytes()
    with interfere(monkeypatch, log, lambda: truncate(log, log.stat().st_size // 2)):
        version = store.add("ds", root)
    assert not version.complete
    assert version.changed == ("sub/log.bin",)
    assert original.startswith(_restored(store, tmp_path, "ds", "sub/log.bin"))


def test_a_file_that_changes_once_is_read_again_and_not_reported(
    store: DataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One append during the first read makes the store read the file again; the second
    read holds still, so the version is complete and holds the file as it ended."""
    root = _source(tmp_path)
    log = root / "sub" / "log.bin"
    with interfere(monkeypatch, log, lambda: append(log, b"tail"), times=1) as writer:
        version = store.add("ds", root)
    assert (writer.changes, writer.reads) == (1, 2)
    assert (version.complete, version.changed, version.vanished) == (True, (), ())
    assert _restored(store, tmp_path, "ds", "sub/log.bin") == log.read_bytes()


def test_a_stable_file_is_read_once_and_the_version_is_complete(
    store: DataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing writes: each file is read once, and the snapshot records the version as
    complete with no list of changed or vanished files."""
    root = _source(tmp_path)
    log = root / "sub" / "log.bin"
    with interfere(monkeypatch, log, lambda: None, times=0) as writer:
        version = store.add("ds", root)
    assert writer.reads == 1
    assert version.complete
    meta = store.repo.load_snapshot(version.snapshot).meta
    assert meta["complete"] is True
    assert "changed" not in meta and "vanished" not in meta


def test_a_file_removed_before_it_is_opened_is_named_as_vanished(
    store: DataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file listed by the walk and removed before its turn (here while ``a.txt`` is
    read) is left out of the version and named as vanished, not a traceback; the files
    around it are stored."""
    root = _source(tmp_path)
    with interfere(monkeypatch, root / "a.txt", (root / "b.txt").unlink):
        version = store.add("ds", root)
    assert (version.complete, version.changed, version.vanished) == (False, (), ("b.txt",))
    assert version.files == 3
    assert sorted(path for path, _ in store.files(version)) == ["a.txt", "c.txt", "sub/log.bin"]


def test_a_file_removed_while_the_source_is_checked_is_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before an add lists the tree, then looks at each entry: an entry gone
    in between is passed over (the store's walk names it if it was ever seen)."""
    root = _source(tmp_path)
    listing = os.walk

    def walk(top: str | Path) -> Iterator[tuple[str, list[str], list[str]]]:
        for directory, dirs, files in listing(top):
            yield directory, dirs, [*files, "gone.txt"]

    monkeypatch.setattr(os, "walk", walk)
    assert check_source(root) == root.resolve()
