"""A passphrase is text: the same text typed composed or decomposed opens the same
repository, and bytes that are not UTF-8 are refused by name, never a traceback."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from aios.data import LocalBackend, Repository, WrongPassphrase
from aios.data import config as config_module
from aios.data.crypto import KdfParams, derive_key
from aios.errors import InvalidInput

COMPOSED = unicodedata.normalize("NFC", "crème brûlée, Ångström")
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)


def test_the_forms_differ_as_bytes() -> None:
    """The premise: without normalisation these would be two passphrases."""
    assert COMPOSED.encode() != DECOMPOSED.encode()


@pytest.mark.parametrize(("created", "opened"), [(COMPOSED, DECOMPOSED), (DECOMPOSED, COMPOSED)])
def test_a_passphrase_opens_its_repository_in_either_unicode_form(
    tmp_path: Path, created: str, opened: str
) -> None:
    Repository.init(LocalBackend(tmp_path / "repo"), created).close()

    Repository.open(LocalBackend(tmp_path / "repo"), opened).close()


def test_an_ascii_passphrase_derives_the_key_it_always_did() -> None:
    """ASCII and NFC text is its own NFC: keys of existing repositories are unchanged."""
    params = KdfParams(n=2**10, r=8, p=1, salt=b"s" * 32)
    for text in ("correct horse battery staple", COMPOSED):
        assert derive_key(text, params) == derive_key(text, params, normalise=False)


def test_a_repository_sealed_with_an_unnormalised_passphrase_still_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository made before normalisation with a decomposed passphrase was sealed
    with that form's key; the same passphrase still opens it, and another does not."""
    with monkeypatch.context() as patch:
        patch.setattr(
            config_module,
            "derive_key",
            lambda text, params: derive_key(text, params, normalise=False),
        )
        Repository.init(LocalBackend(tmp_path / "repo"), DECOMPOSED).close()

    Repository.open(LocalBackend(tmp_path / "repo"), DECOMPOSED).close()
    with pytest.raises(WrongPassphrase):
        Repository.open(LocalBackend(tmp_path / "repo"), DECOMPOSED + "x")


def test_a_passphrase_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    """``\\xff\\xfe`` from the environment arrives as lone surrogates."""
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        Repository.init(LocalBackend(tmp_path / "repo"), "\udcff\udcfe")
    assert not (tmp_path / "repo" / "config").exists()
