"""The repository config is authenticated: an edited config is refused, never used."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aios.data import LocalBackend, Repository, UntrustedConfig, WrongPassphrase, copy_to
from aios.data.crypto import derive_key, new_kdf_params, wrap_key
from tests.data.store.conftest import PASSPHRASE, SMALL_CHUNKS, make_tree, new_repo

Edit = Callable[[dict[str, Any]], None]


def read_config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((path / "config").read_text())
    return config


def edit_config(path: Path, edit: Edit) -> None:
    config = read_config(path)
    edit(config)
    (path / "config").write_text(json.dumps(config, indent=1))


def stored_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def with_snapshot(path: Path, src: Path) -> Repository:
    repo = new_repo(path)
    repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})
    repo.close()
    return repo


def version_1_repository(path: Path, src: Path) -> None:
    """A repository with one snapshot and the config the store wrote before configs were
    authenticated: version 1, no ``mac``, the master key sealed with no context."""
    master_key, id_key = secrets.token_bytes(32), secrets.token_bytes(32)
    kdf = new_kdf_params()
    config = {
        "version": 1,
        "id": secrets.token_hex(16),
        "chunker": {
            "min_size": SMALL_CHUNKS.min_size,
            "avg_size": SMALL_CHUNKS.avg_size,
            "max_size": SMALL_CHUNKS.max_size,
        },
        "encrypted": True,
        "kdf": kdf.to_json(),
        "master_key": wrap_key(derive_key(PASSPHRASE, kdf), master_key),
        "id_key": wrap_key(master_key, id_key),
    }
    backend = LocalBackend(path)
    backend.put("config", json.dumps(config, indent=1).encode())
    with Repository(backend, config, master_key, id_key) as repo:
        repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})


def _unencrypted(config: dict[str, Any]) -> None:
    config["encrypted"] = False


def _unencrypted_with_own_id_key(config: dict[str, Any]) -> None:
    config["encrypted"] = False
    config["id_key"] = base64.b64encode(os.urandom(32)).decode()


@pytest.mark.parametrize("edit", [_unencrypted, _unencrypted_with_own_id_key])
def test_a_config_edited_to_unencrypted_is_refused_and_no_plaintext_is_written(
    tmp_path: Path, edit: Edit
) -> None:
    """Opened with a passphrase, a config saying ``encrypted: false`` is refused before
    anything is stored: no pack, index or snapshot file appears."""
    src = make_tree(tmp_path / "src")
    with_snapshot(tmp_path / "repo", src)
    edit_config(tmp_path / "repo", edit)
    before = stored_files(tmp_path / "repo")
    (src / "new.txt").write_text("confidential numbers\n")

    with pytest.raises(UntrustedConfig, match=r"not encrypted .* a passphrase was given"):
        repo = Repository.open(LocalBackend(tmp_path / "repo"), PASSPHRASE)
        repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})

    assert stored_files(tmp_path / "repo") == before


def _chunker(config: dict[str, Any]) -> None:
    config["chunker"]["max_size"] = 1 << 30


def _id(config: dict[str, Any]) -> None:
    config["id"] = secrets.token_hex(16)


def _version(config: dict[str, Any]) -> None:
    config["version"] = 1


def _id_key(config: dict[str, Any]) -> None:
    config["id_key"] = config["master_key"]


def _added_field(config: dict[str, Any]) -> None:
    config["compression"] = 0


def _authenticator_removed(config: dict[str, Any]) -> None:
    del config["mac"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_chunker, "fails its authenticator"),
        (_id, "fails its authenticator"),
        (_version, "fails its authenticator"),
        (_id_key, "fails its authenticator"),
        (_added_field, "fails its authenticator"),
        (_authenticator_removed, "lacks its authenticator"),
    ],
)
def test_an_edited_config_is_refused_and_left_as_it_is(
    tmp_path: Path, edit: Edit, message: str
) -> None:
    with_snapshot(tmp_path / "repo", make_tree(tmp_path / "src"))
    edit_config(tmp_path / "repo", edit)
    before = stored_files(tmp_path / "repo")

    with pytest.raises(UntrustedConfig, match=f"repository config {message}"):
        Repository.open(LocalBackend(tmp_path / "repo"), PASSPHRASE)

    assert stored_files(tmp_path / "repo") == before


def test_a_wrong_passphrase_is_still_told_as_one(tmp_path: Path) -> None:
    with_snapshot(tmp_path / "repo", make_tree(tmp_path / "src"))
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        Repository.open(LocalBackend(tmp_path / "repo"), "not the passphrase")


def test_a_version_1_repository_opens_and_is_sealed_on_that_first_open(tmp_path: Path) -> None:
    """The old format is accepted once: the open writes ``mac`` and version 2, its
    snapshot still restores, and stripping the new ``mac`` is then refused."""
    src = make_tree(tmp_path / "src")
    version_1_repository(tmp_path / "repo", src)
    old = read_config(tmp_path / "repo")

    repo = Repository.open(LocalBackend(tmp_path / "repo"), PASSPHRASE)

    sealed = read_config(tmp_path / "repo")
    assert (sealed["version"], "mac" in sealed) == (2, True)
    assert {k: v for k, v in sealed.items() if k not in ("version", "master_key", "mac")} == {
        k: v for k, v in old.items() if k not in ("version", "master_key")
    }
    assert repo.check(read_data=True).ok
    assert len(repo.snapshots()) == 1
    repo.close()
    reopened = Repository.open(LocalBackend(tmp_path / "repo"), PASSPHRASE)
    assert read_config(tmp_path / "repo") == sealed  # sealed once, not rewritten again
    assert reopened.check(read_data=True).ok

    def strip_back_to_version_1(config: dict[str, Any]) -> None:
        del config["mac"]
        config["version"] = 1

    edit_config(tmp_path / "repo", strip_back_to_version_1)
    with pytest.raises(UntrustedConfig, match="lacks its authenticator"):
        Repository.open(LocalBackend(tmp_path / "repo"), PASSPHRASE)


def test_a_version_1_config_claiming_version_2_is_refused(tmp_path: Path) -> None:
    """A version-1 master key under a config that says version 2 is not upgraded."""
    version_1_repository(tmp_path / "repo", make_tree(tmp_path / "src"))
    edit_config(tmp_path / "repo", lambda config: config.update(version=2))
    before = stored_files(tmp_path / "repo")

    with pytest.raises(UntrustedConfig, match="sealed as version 1 but the config says"):
        Repository.open(LocalBackend(tmp_path / "repo"), PASSPHRASE)

    assert stored_files(tmp_path / "repo") == before


def test_an_unencrypted_repository_opens_without_a_passphrase_as_before(tmp_path: Path) -> None:
    """No passphrase, nothing to authenticate: it opens, stores and is never rewritten;
    given a passphrase it is refused with what to do instead."""
    src = make_tree(tmp_path / "src")
    repo = new_repo(tmp_path / "repo", encrypted=False)
    repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})
    repo.close()
    config = (tmp_path / "repo" / "config").read_bytes()
    assert "mac" not in json.loads(config)

    reopened = Repository.open(LocalBackend(tmp_path / "repo"), None)
    assert reopened.check(read_data=True).ok
    assert (tmp_path / "repo" / "config").read_bytes() == config
    with pytest.raises(UntrustedConfig, match="open it without a passphrase"):
        Repository.open(LocalBackend(tmp_path / "repo"), PASSPHRASE)


@pytest.mark.parametrize("encrypted", [True, False])
def test_copying_chunker_params_reseals_the_destination(tmp_path: Path, encrypted: bool) -> None:
    """The destination takes the source's chunker and id key, stays openable, and an
    edit made after the copy is still refused."""
    source = new_repo(tmp_path / "source")
    source.save_snapshot(
        source.store_tree(make_tree(tmp_path / "src")).tree_id, paths=[], tags={}, meta={}
    )
    passphrase = "the backup's passphrase" if encrypted else None
    dest = Repository.init(LocalBackend(tmp_path / "dest"), passphrase, encrypted=encrypted)
    copy_to(source, dest)
    dest.close()

    assert read_config(tmp_path / "dest")["chunker"] == read_config(tmp_path / "source")["chunker"]
    assert ("mac" in read_config(tmp_path / "dest")) is encrypted
    backup = Repository.open(LocalBackend(tmp_path / "dest"), passphrase)
    assert backup.check(read_data=True).ok
    assert backup.id_key == source.id_key
    if encrypted:
        edit_config(tmp_path / "dest", _chunker)
        with pytest.raises(UntrustedConfig, match="fails its authenticator"):
            Repository.open(LocalBackend(tmp_path / "dest"), passphrase)
