"""The fsspec backend against a real S3 API server (moto) on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.data import FsspecBackend, Repository, copy_to
from aios.data.datasets import DataStore
from aios.errors import NotFound
from tests.data.store.conftest import PASSPHRASE, SMALL_CHUNKS, make_tree, same_tree

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with one bucket."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _backend(endpoint, "").fs.mkdir("aios-test")
    yield endpoint
    server.stop()


def _backend(endpoint: str, prefix: str) -> FsspecBackend:
    return FsspecBackend(
        f"s3://aios-test/{prefix}",
        key="test",
        secret="test",
        client_kwargs={"endpoint_url": endpoint},
    )


def test_backend_contract_on_s3(s3_endpoint: str) -> None:
    backend = _backend(s3_endpoint, "contract")
    backend.put("data/ab/abc", b"0123456789")
    assert backend.get("data/ab/abc") == b"0123456789"
    assert backend.get_range("data/ab/abc", 3, 4) == b"3456"
    assert backend.list("data") == ["data/ab/abc"]
    assert backend.exists("data/ab/abc") and not backend.exists("data/ab/nope")
    backend.delete("data/ab/abc")
    backend.delete("data/ab/abc")
    assert backend.list("data") == []
    with pytest.raises(NotFound):
        backend.get("data/ab/abc")


def test_repository_round_trip_on_s3(s3_endpoint: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    repo = Repository.init(_backend(s3_endpoint, "repo"), PASSPHRASE, chunker=SMALL_CHUNKS)
    repo.pack_size = 96 * 1024
    stored = repo.store_tree(src)
    snapshot = repo.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    reopened = Repository.open(_backend(s3_endpoint, "repo"), PASSPHRASE)
    assert reopened.check(read_data=True).ok
    assert reopened.store_tree(src).new_bytes == 0
    reopened.restore(snapshot.tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []

    backup = Repository.init(_backend(s3_endpoint, "backup"), "other")
    assert copy_to(reopened, backup).snapshots == 1
    assert backup.check(read_data=True).ok


def test_adds_at_once_on_s3_get_distinct_consecutive_versions(
    s3_endpoint: str, tmp_path: Path
) -> None:
    """Four writers, each with its own repository object and S3 client, add one dataset
    at once; the naming lock (write, then list) orders them on S3 as on a disk."""
    Repository.init(_backend(s3_endpoint, "concurrent"), None, encrypted=False).close()
    start = threading.Barrier(4)
    versions: list[int] = []
    errors: list[BaseException] = []

    def add(i: int) -> None:
        source = tmp_path / f"src{i}"
        source.mkdir()
        (source / "part.txt").write_text(f"writer {i}\n")
        try:
            with Repository.open(_backend(s3_endpoint, "concurrent"), None) as repo:
                start.wait()
                versions.append(DataStore(repo).add("digits", source).version)
        except BaseException as error:  # handed to the test thread
            errors.append(error)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(versions) == [1, 2, 3, 4]
