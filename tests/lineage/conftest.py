"""A control plane whose home holds an encrypted data repository, with a dataset
``raw`` of two text files; jobs inherit the passphrase from the test's environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.data.backend import LocalBackend
from aios.data.datasets import DataStore
from aios.data.repository import Repository
from tests.control.control_harness import Running, start_plane, stop_plane

PASSPHRASE = "lineage tests passphrase"


@pytest.fixture
def data_plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.delenv("AIOS_DATA_REPO", raising=False)
    monkeypatch.setenv("AIOS_DATA_PASSPHRASE", PASSPHRASE)
    home = tmp_path / "home"
    source = tmp_path / "raw"
    source.mkdir()
    (source / "a.txt").write_text("alpha\n")
    (source / "b.txt").write_text("beta\n")
    with Repository.init(LocalBackend(home / "data"), PASSPHRASE) as repo:
        DataStore(repo).add("raw", source, "first")
    running = start_plane(home)
    try:
        yield running
    finally:
        stop_plane(running)


def open_store(running: Running) -> DataStore:
    """The plane's data repository, opened afresh (close its ``repo`` after use)."""
    return DataStore(Repository.open(LocalBackend(running.home / "data"), PASSPHRASE))
