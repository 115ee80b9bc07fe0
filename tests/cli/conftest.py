"""Fixtures of the CLI's tests: one real control plane per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.cli_harness import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster.start(tmp_path_factory.mktemp("aios-home"))
    try:
        yield cluster
    finally:
        cluster.stop()
