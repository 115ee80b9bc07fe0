"""Fixtures for the data-store tests: real repositories in tmp dirs, real files."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.data import ChunkerParams, LocalBackend, Repository

# Small chunks and packs so that a few hundred KiB of test data spans many of each.
SMALL_CHUNKS = ChunkerParams(min_size=4 * 1024, avg_size=16 * 1024, max_size=64 * 1024)
SMALL_PACK = 96 * 1024
PASSPHRASE = "correct horse battery staple"


def random_bytes(seed: int, size: int) -> bytes:
    """Incompressible bytes, reproducible from `seed`."""
    return random.Random(seed).randbytes(size)


def make_tree(root: Path, seed: int = 1) -> Path:
    """A small tree with nested dirs, an empty file, an empty dir, odd modes and a
    symlink pointing outside the tree."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "big.bin").write_bytes(random_bytes(seed, 300_000))
    (root / "sub" / "notes.txt").write_text("line of text\n" * 2000)
    (root / "sub" / "deeper" / "small.bin").write_bytes(random_bytes(seed + 1, 5_000))
    (root / "empty.txt").write_bytes(b"")
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "script.sh", 0o751)
    os.chmod(root / "sub" / "deeper", 0o750)
    os.symlink("/etc", root / "outside-link")
    os.symlink("sub/notes.txt", root / "inside-link")
    return root


def new_repo(path: Path, *, encrypted: bool = True) -> Repository:
    repo = Repository.init(
        LocalBackend(path),
        PASSPHRASE if encrypted else None,
        encrypted=encrypted,
        chunker=SMALL_CHUNKS,
    )
    repo.pack_size = SMALL_PACK
    return repo


def reopen(path: Path) -> Repository:
    repo = Repository.open(LocalBackend(path), PASSPHRASE)
    repo.pack_size = SMALL_PACK
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    repository = new_repo(tmp_path / "repo")
    yield repository
    repository.release_lock()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def same_tree(left: Path, right: Path) -> list[str]:
    """Differences between two trees (content, type, mode, symlink target); [] if equal."""
    problems: list[str] = []
    for folder, dirs, files in os.walk(left):
        for name in dirs + files:
            a = Path(folder) / name
            rel = a.relative_to(left)
            b = right / rel
            if a.is_symlink():
                if not b.is_symlink() or os.readlink(a) != os.readlink(b):
                    problems.append(f"{rel}: symlink differs")
                continue
            if not b.exists() or b.is_symlink():
                problems.append(f"{rel}: missing")
                continue
            if a.stat().st_mode != b.stat().st_mode:
                problems.append(f"{rel}: mode {a.stat().st_mode:o} != {b.stat().st_mode:o}")
            if a.is_file() and a.read_bytes() != b.read_bytes():
                problems.append(f"{rel}: content differs")
            if a.is_file() and int(a.stat().st_mtime) != int(b.stat().st_mtime):
                problems.append(f"{rel}: mtime differs")
    return problems
