"""The backend contract on a local directory and on fsspec's local filesystem (the
temporary-name-then-move path); S3 has its own module."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aios.data import Backend, FsspecBackend, LocalBackend, Repository
from aios.errors import InvalidInput, NotFound
from tests.data.store.conftest import PASSPHRASE, SMALL_CHUNKS, make_tree, same_tree


def _backends(root: Path) -> list[Backend]:
    return [LocalBackend(root / "local"), FsspecBackend(f"file://{root / 'fsspec'}")]


@pytest.mark.parametrize("kind", [0, 1], ids=["local", "fsspec-file"])
def test_backend_contract(tmp_path: Path, kind: int) -> None:
    backend = _backends(tmp_path)[kind]
    backend.put("data/ab/abc", b"0123456789")
    backend.put("data/ab/abc", b"abcdefghij")  # replacing is atomic too
    assert backend.get("data/ab/abc") == b"abcdefghij"
    assert backend.get_range("data/ab/abc", 3, 4) == b"defg"
    assert backend.size("data/ab/abc") == 10
    assert backend.list("data") == ["data/ab/abc"]
    assert backend.list("nothing-here") == []
    assert backend.exists("data/ab/abc") and not backend.exists("data/ab/nope")
    backend.delete("data/ab/abc")
    backend.delete("data/ab/abc")
    with pytest.raises(NotFound):
        backend.get("data/ab/abc")
    with pytest.raises(InvalidInput, match="relative"):
        backend.put("../escape", b"x")


@pytest.mark.parametrize("kind", [0, 1], ids=["local", "fsspec-file"])
def test_temporaries_are_named_with_their_size_and_age(tmp_path: Path, kind: int) -> None:
    """A killed put's temporary file is not listed, but `temporaries` names it (for
    `gc`), wherever it lies; it can be deleted by that name."""
    backend = _backends(tmp_path)[kind]
    backend.put("config", b"{}")
    backend.put("data/ab/abc", b"0123456789")
    root = tmp_path / ("local" if kind == 0 else "fsspec")
    (root / "data" / "ab" / "abd.tmp-0a1b2c3d4e5f").write_bytes(b"half")
    (root / "config.tmp-0a1b2c3d4e5f").write_bytes(b"{")
    assert backend.list("data") == ["data/ab/abc"]
    found = backend.temporaries()
    assert [(t.path, t.size) for t in found] == [
        ("config.tmp-0a1b2c3d4e5f", 1),
        ("data/ab/abd.tmp-0a1b2c3d4e5f", 4),
    ]
    assert all(abs(t.modified - time.time()) < 60 for t in found)
    for temporary in found:
        backend.delete(temporary.path)
    assert backend.temporaries() == []
    assert backend.list("data") == ["data/ab/abc"]


def test_a_repository_works_on_fsspec_local_files(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    backend = FsspecBackend(f"file://{tmp_path / 'repo'}")
    repo = Repository.init(backend, PASSPHRASE, chunker=SMALL_CHUNKS)
    snapshot = repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})
    reopened = Repository.open(FsspecBackend(f"file://{tmp_path / 'repo'}"), PASSPHRASE)
    assert reopened.check(read_data=True).ok
    reopened.restore(snapshot.tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []
