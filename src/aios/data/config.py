"""The repository's ``config`` file: its keys and chunker parameters, authenticated.

``config`` is the one file stored in the clear. It holds the format ``version``, the
repository ``id``, the ``chunker`` bounds, whether it is ``encrypted``, and the keys
(see `aios.data.crypto`): in an encrypted repository the scrypt ``kdf`` parameters, the
``master_key`` sealed by the passphrase's key and the ``id_key`` sealed by the master
key; in an unencrypted one the ``id_key`` in the clear.

Whoever can write the storage but lacks the passphrase must not change how the
repository is used. An encrypted config carries ``mac``: an HMAC under a key derived
from the master key over the canonical JSON (sorted keys, no spaces) of every other
field, so a config whose chunker, id, version, id key or anything else was edited is
refused when it is opened. That a repository is unencrypted cannot be authenticated
by a key it does not have, so opening with a passphrase refuses a config that says
``encrypted: false``: a caller holding a passphrase expects encryption, and a config
edited to drop it would make every later write plaintext. An unencrypted repository
is opened without a passphrase and has nothing to authenticate.

Version 1 configs, written before the authenticator, have no ``mac``. The first open
that unwraps their master key accepts them as they are, and writes them back as version
2: ``mac`` added and the master key re-sealed with the format as associated data. A
version-2 config whose ``mac`` was stripped therefore still shows its version in how
its master key opens, and is refused; a missing authenticator is accepted once per
repository, on that first open. What no check here can catch is a copy of the version-1
config saved before that open, edited and put back: trust on first use, as in any
upgrade that keeps no record on the client.
"""

from __future__ import annotations

import hmac
import json
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aios.data.crypto import (
    KdfParams,
    UntrustedConfig,
    WrongPassphrase,
    authenticator,
    b64,
    derive_key,
    new_kdf_params,
    unb64,
    unwrap_key,
    wrap_key,
)
from aios.errors import InvalidInput

__all__ = ["VERSION", "Unlocked", "create", "decode", "encode", "reseal", "unlock"]

VERSION = 2
_MAC = "mac"
# Associated data of a version-2 master key: it tells a stripped mac from a version-1 config.
_SEALED_AS = b"aios repository config v2"
_TAMPERED = "it was edited or damaged; restore it from a copy you trust"


@dataclass(frozen=True)
class Unlocked:
    """An opened config with its keys; `rewritten` when `config` was upgraded from
    version 1 and must be stored before the repository is used."""

    config: dict[str, Any]
    master_key: bytes | None
    id_key: bytes
    rewritten: bool


def encode(config: dict[str, Any]) -> bytes:
    """The bytes stored as ``config``."""
    return json.dumps(config, indent=1).encode()


def decode(raw: bytes) -> dict[str, Any]:
    """Parses a stored ``config``; raises `UntrustedConfig` unless it is a JSON object."""
    try:
        config = json.loads(raw)
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise UntrustedConfig(f"the repository config is not a JSON object: {_TAMPERED}")
    return config


def _signed_bytes(config: dict[str, Any]) -> bytes:
    body = {name: value for name, value in config.items() if name != _MAC}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def reseal(config: dict[str, Any], master_key: bytes | None) -> dict[str, Any]:
    """`config` with a fresh ``mac`` over its other fields (none when unencrypted);
    called by whoever holds the master key after changing a field."""
    sealed = {name: value for name, value in config.items() if name != _MAC}
    if master_key is not None:
        sealed[_MAC] = authenticator(master_key, _signed_bytes(sealed))
    return sealed


def create(
    passphrase: str | None, *, encrypted: bool, chunker: dict[str, int]
) -> tuple[dict[str, Any], bytes | None, bytes]:
    """A new version-2 config with fresh keys: (config, master key, id key)."""
    id_key = secrets.token_bytes(32)
    config: dict[str, Any] = {
        "version": VERSION,
        "id": secrets.token_hex(16),
        "chunker": dict(chunker),
        "encrypted": encrypted,
    }
    if not encrypted:
        config["id_key"] = b64(id_key)
        return config, None, id_key
    if not passphrase:
        raise InvalidInput("an encrypted repository needs a non-empty passphrase")
    kdf = new_kdf_params()
    master_key = secrets.token_bytes(32)
    config["kdf"] = kdf.to_json()
    config["master_key"] = wrap_key(derive_key(passphrase, kdf), master_key, context=_SEALED_AS)
    config["id_key"] = wrap_key(master_key, id_key)
    return reseal(config, master_key), master_key, id_key


def _field(config: dict[str, Any], name: str) -> Any:
    try:
        return config[name]
    except KeyError:
        raise UntrustedConfig(f"the repository config has no {name!r}: {_TAMPERED}") from None


def _key(open_key: Callable[[str], bytes], stored: Any) -> bytes:
    """The 32-byte id key from its stored form; `UntrustedConfig` if it is not one."""
    try:
        key = open_key(stored) if isinstance(stored, str) else b""
    except ValueError:  # bad base64, or (WrongPassphrase) a seal the master key won't open
        key = b""
    if len(key) != 32:
        raise UntrustedConfig(f"the repository config's id key is unreadable: {_TAMPERED}")
    return key


def _open_master_key(passphrase: str, params: KdfParams, wrapped: Any) -> tuple[bytes, bytes, bool]:
    """(key-encryption key, master key, sealed as version 1) for the first key of
    `passphrase` that opens `wrapped`: its NFC form, then (only if that differs) the form
    as typed, which a repository made before passphrases were normalised was sealed with.
    Raises `WrongPassphrase` when none opens it."""
    keks = [derive_key(passphrase, params)]
    if unicodedata.normalize("NFC", passphrase) != passphrase:
        keks.append(derive_key(passphrase, params, normalise=False))
    for kek in keks:
        for context, legacy in ((_SEALED_AS, False), (b"", True)):
            try:
                return kek, unwrap_key(kek, wrapped, context=context), legacy
            except WrongPassphrase:
                continue
    raise WrongPassphrase("wrong passphrase for this repository")


def unlock(config: dict[str, Any], passphrase: str | None) -> Unlocked:
    """Opens `config` with `passphrase` (None or empty: no passphrase). Raises
    `UntrustedConfig` for a config that says it is unencrypted while a passphrase is
    given, or that fails its authenticator; `WrongPassphrase` if the passphrase does not
    open the master key or none is given for an encrypted repository."""
    encrypted = _field(config, "encrypted")
    version = _field(config, "version")
    if passphrase and encrypted is not True:
        raise UntrustedConfig(
            f"the repository config says it is not encrypted (encrypted: "
            f"{json.dumps(encrypted)}) but a passphrase was given: refusing to use it, as "
            "whatever it stored would be plaintext. If the repository was created encrypted, "
            "its config was tampered with; if unencrypted, open it without a passphrase"
        )
    if version not in (1, VERSION):
        raise UntrustedConfig(f"unknown repository config version {version!r}: {_TAMPERED}")
    if encrypted is False:
        return Unlocked(config, None, _key(unb64, _field(config, "id_key")), rewritten=False)
    if encrypted is not True:
        raise UntrustedConfig(f"the repository config's 'encrypted' is not a boolean: {_TAMPERED}")
    if not passphrase:
        raise WrongPassphrase("this repository is encrypted: a passphrase is needed")
    params = KdfParams.from_json(_field(config, "kdf"))
    kek, master_key, legacy = _open_master_key(passphrase, params, _field(config, "master_key"))
    if legacy:
        if version != 1 or _MAC in config:
            raise UntrustedConfig(
                "the repository config's master key is sealed as version 1 but the config "
                f"says otherwise: {_TAMPERED}"
            )
        upgraded = dict(config, version=VERSION)
        upgraded["master_key"] = wrap_key(kek, master_key, context=_SEALED_AS)
        config, rewritten = reseal(upgraded, master_key), True
    else:
        given = config.get(_MAC)
        expected = authenticator(master_key, _signed_bytes(config))
        if not isinstance(given, str) or not hmac.compare_digest(given, expected):
            state = "lacks its authenticator" if given is None else "fails its authenticator"
            raise UntrustedConfig(f"the repository config {state}: {_TAMPERED}")
        rewritten = False
    id_key = _key(lambda text: unwrap_key(master_key, text), _field(config, "id_key"))
    return Unlocked(config, master_key, id_key, rewritten)
