"""Deduplication and encryption: what reaches the packs, and who can open them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aios.data import LocalBackend, Repository, WrongPassphrase
from aios.errors import InvalidInput
from tests.data.store.conftest import PASSPHRASE, new_repo, random_bytes


def _stored_files(repo_path: Path) -> list[bytes]:
    return [p.read_bytes() for p in repo_path.rglob("*") if p.is_file() and p.name != "config"]


def test_storing_the_same_tree_again_adds_no_chunks(repo: Repository, tree: Path) -> None:
    first = repo.store_tree(tree)
    second = repo.store_tree(tree)
    assert first.new_bytes == first.bytes > 0
    assert second.tree_id == first.tree_id
    assert (second.new_bytes, second.new_chunks) == (0, 0)


def test_one_percent_changed_in_place_stores_few_new_bytes(
    repo: Repository, tmp_path: Path
) -> None:
    """Content-defined chunks confine a small edit to the chunks around it."""
    data = bytearray(random_bytes(7, 4_000_000))
    src = tmp_path / "data"
    src.mkdir()
    (src / "blob.bin").write_bytes(data)
    repo.store_tree(src)
    rng = random.Random(3)
    for _ in range(4):  # four 10,000-byte edits = 1 % of the bytes
        start = rng.randrange(0, len(data) - 10_000)
        data[start : start + 10_000] = random_bytes(rng.randrange(1 << 30), 10_000)
    (src / "blob.bin").write_bytes(data)
    second = repo.store_tree(src)
    assert 0 < second.new_bytes <= 0.15 * len(data)
    assert second.new_chunks <= 4 * 3


def test_no_plaintext_reaches_an_encrypted_repository(tmp_path: Path) -> None:
    """No 32-byte window of a file's content appears in any stored file."""
    src = tmp_path / "src"
    src.mkdir()
    secret = random_bytes(11, 200_000)
    text = "".join(f"patient {i} has condition {i * 7 % 13}\n" for i in range(5000)).encode()
    (src / "secret.bin").write_bytes(secret)
    (src / "records.csv").write_bytes(text)
    repo = new_repo(tmp_path / "repo")
    stored = repo.store_tree(src)
    repo.save_snapshot(stored.tree_id, paths=["secret-path"], tags={}, meta={"k": "v"})
    blobs = _stored_files(tmp_path / "repo")
    for content in (secret, text):
        for offset in range(0, len(content) - 32, 4_999):
            window = content[offset : offset + 32]
            assert not any(window in blob for blob in blobs)
    assert not any(b"secret.bin" in blob or b"secret-path" in blob for blob in blobs)


def test_unencrypted_repositories_store_compressed_plaintext(tmp_path: Path) -> None:
    """Asked for, a repository without encryption opens with no passphrase, and its
    incompressible chunks are visible in the packs (the check above would catch it)."""
    src = tmp_path / "src"
    src.mkdir()
    data = random_bytes(12, 100_000)
    (src / "a.bin").write_bytes(data)
    repo = new_repo(tmp_path / "repo", encrypted=False)
    stored = repo.store_tree(src)
    repo.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    assert any(data[:64] in blob for blob in _stored_files(tmp_path / "repo"))
    reopened = Repository.open(LocalBackend(tmp_path / "repo"), None)
    assert reopened.check(read_data=True).ok
    assert reopened.stats().encrypted is False


def test_a_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    new_repo(tmp_path / "repo")
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        Repository.open(LocalBackend(tmp_path / "repo"), "not it")
    with pytest.raises(WrongPassphrase, match="passphrase is needed"):
        Repository.open(LocalBackend(tmp_path / "repo"), None)
    assert issubclass(WrongPassphrase, InvalidInput)
    assert Repository.open(LocalBackend(tmp_path / "repo"), PASSPHRASE).stats().blobs == 0


def test_init_refuses_an_existing_repository_and_an_empty_passphrase(tmp_path: Path) -> None:
    new_repo(tmp_path / "repo")
    with pytest.raises(InvalidInput, match="already holds"):
        Repository.init(LocalBackend(tmp_path / "repo"), PASSPHRASE)
    with pytest.raises(InvalidInput, match="passphrase"):
        Repository.init(LocalBackend(tmp_path / "other"), "")
