"""Fixtures: a real encrypted repository in a temporary directory, and source trees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aios.data.backend import LocalBackend
from aios.data.datasets import DataStore
from aios.data.repository import Repository

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    """An encrypted repository on a local directory, closed after the test."""
    repository = Repository.init(LocalBackend(tmp_path / "repo"), PASSPHRASE)
    yield repository
    repository.close()


@pytest.fixture
def store(repo: Repository) -> DataStore:
    return DataStore(repo)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small dataset: a CSV, a Parquet file, a text file in a subdirectory and a
    symlink that stays inside the tree."""
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "train.csv").write_text("id,name,score\n1,ann,0.5\n2,bob,0.75\n")
    table = pa.table({"label": pa.array([1, 2, 3], pa.int32()), "text": ["a", "b", None]})
    pq.write_table(table, root / "labels.parquet")
    (root / "sub" / "notes.txt").write_text("first notes\n")
    (root / "sub" / "link").symlink_to("notes.txt")
    return root
