"""Keys and the sealing of every byte a repository stores.

A repository has two random 32-byte keys: the master key (AES-256-GCM) that seals
blobs, pack headers, index and snapshot files, and the id key that makes chunk ids
keyed BLAKE3 (so ids reveal nothing about content to someone without the key). The
master key is kept in ``config`` sealed by a key derived from the passphrase with
scrypt, a memory-hard KDF whose parameters are recorded next to it; the id key is
sealed by the master key. An unencrypted repository keeps the id key in the clear and
seals by compression only. ``config`` itself is authenticated by `authenticator`, an
HMAC under a key derived from the master key (see `aios.data.config`).

A sealed blob is ``nonce (12) || ciphertext || tag (16)`` of ``flag (1) || payload``,
where the flag says whether the payload is zstd-compressed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from aios.errors import AiosError, InvalidInput

__all__ = [
    "Damaged",
    "KdfParams",
    "Sealer",
    "UntrustedConfig",
    "WrongPassphrase",
    "authenticator",
    "derive_key",
    "new_kdf_params",
]

_NONCE = 12
_TAG = 16
_RAW = b"\x00"
_ZSTD = b"\x01"
# Compressing a sample first (borg's "auto" mode) skips zstd on incompressible chunks,
# which would otherwise cost as much as the encryption and save nothing.
_SAMPLE = 64 * 1024
_WORTH_IT = 0.97


class WrongPassphrase(InvalidInput):
    """The passphrase does not open this repository's master key."""


class Damaged(AiosError):
    """Stored bytes failed authentication or did not hash to their id."""


class UntrustedConfig(InvalidInput):
    """The repository's ``config`` cannot be trusted with the given passphrase: it says
    the repository is unencrypted, or it does not match its authenticator (edited or
    damaged). Nothing was written."""


@dataclass(frozen=True)
class KdfParams:
    """scrypt parameters: n (cost, a power of two), r, p and the salt."""

    n: int
    r: int
    p: int
    salt: bytes

    def to_json(self) -> dict[str, Any]:
        return {"name": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": b64(self.salt)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KdfParams:
        return cls(n=int(raw["n"]), r=int(raw["r"]), p=int(raw["p"]), salt=unb64(raw["salt"]))


def new_kdf_params() -> KdfParams:
    """scrypt at n=2**15, r=8: 32 MiB of memory and ~0.1 s per guess, as restic uses."""
    return KdfParams(n=2**15, r=8, p=1, salt=os.urandom(32))


def derive_key(passphrase: str, params: KdfParams, *, normalise: bool = True) -> bytes:
    """Returns the 32-byte key-encryption key for `passphrase` as UTF-8, normalised to
    NFC unless ``normalise`` is false: the same text typed composed (``é``) or decomposed
    (``e`` + U+0301), as keyboards and systems differ, gives the same key. An ASCII or NFC
    passphrase is its own NFC, so keys derived before normalisation are unchanged.

    Raises InvalidInput for a passphrase that is not text (lone surrogates: bytes that
    were not UTF-8, such as ``\\xff``, read from the environment or a terminal).
    """
    text = unicodedata.normalize("NFC", passphrase) if normalise else passphrase
    try:
        secret = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the passphrase is not valid UTF-8 text") from None
    kdf = Scrypt(salt=params.salt, length=32, n=params.n, r=params.r, p=params.p)
    return kdf.derive(secret)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def wrap_key(kek: bytes, key: bytes, *, context: bytes = b"") -> str:
    """Seals a key with a key-encryption key, for storing in ``config``; `context` is
    authenticated with it (AES-GCM associated data; empty is the same as none)."""
    nonce = os.urandom(_NONCE)
    return b64(nonce + AESGCM(kek).encrypt(nonce, key, context))


def unwrap_key(kek: bytes, wrapped: str, *, context: bytes = b"") -> bytes:
    """Opens a key sealed by `wrap_key` with the same `context`; raises
    `WrongPassphrase` if `kek` (or `context`) is wrong."""
    raw = unb64(wrapped)
    try:
        return AESGCM(kek).decrypt(raw[:_NONCE], raw[_NONCE:], context)
    except InvalidTag:
        raise WrongPassphrase("wrong passphrase for this repository") from None


def authenticator(master_key: bytes, data: bytes) -> str:
    """HMAC-SHA256 of `data` under a key derived from the master key (HKDF, so the
    AES-GCM key is never used as an HMAC key), base64-encoded; compare with
    `hmac.compare_digest`."""
    mac_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"aios repository config mac"
    ).derive(master_key)
    return b64(hmac.new(mac_key, data, hashlib.sha256).digest())


class Sealer:
    """Compresses and (in an encrypted repository) encrypts; computes keyed ids.

    Safe to share between threads: AESGCM, BLAKE3 and a fresh zstd context per call
    hold no state between calls.
    """

    def __init__(self, master_key: bytes | None, id_key: bytes, *, compression: int = 1) -> None:
        self.encrypted = master_key is not None
        self._aead = AESGCM(master_key) if master_key is not None else None
        self._id_key = id_key
        self._level = compression
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        """This thread's compressor: making one per blob costs more than compressing a
        small blob, and one compressor must not be used by two threads at once."""
        packer: zstandard.ZstdCompressor | None = getattr(self._local, "packer", None)
        if packer is None:
            packer = self._local.packer = zstandard.ZstdCompressor(level=self._level)
        return packer

    def blob_id(self, plain: bytes | memoryview) -> str:
        """The keyed BLAKE3 id of a blob's plaintext."""
        return blake3.blake3(plain, key=self._id_key).hexdigest()

    def seal(self, plain: bytes | memoryview, *, compress: bool = True) -> bytes:
        """Returns the stored form of `plain`; compression is skipped where it saves
        less than 3 % on a sample."""
        payload = _RAW + bytes(plain)
        if compress and len(plain) > 0:
            packer = self._compressor()
            packed = packer.compress(bytes(plain[:_SAMPLE]))
            if len(packed) < _WORTH_IT * min(len(plain), _SAMPLE):
                if len(plain) > _SAMPLE:
                    packed = packer.compress(plain)
                if len(packed) < len(plain):
                    payload = _ZSTD + packed
        if self._aead is None:
            return payload
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, payload, None)

    def open(self, sealed: bytes) -> bytes:
        """Returns the plaintext; raises `Damaged` if authentication or decompression fails."""
        payload = sealed
        if self._aead is not None:
            # A short read (a truncated pack) must be damage, not the library's
            # ValueError about the nonce's length.
            if len(sealed) < _NONCE + _TAG:
                raise Damaged("sealed data is truncated")
            try:
                payload = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], None)
            except (InvalidTag, ValueError):
                raise Damaged("authentication failed: the stored bytes were altered") from None
        flag, body = payload[:1], payload[1:]
        if flag == _RAW:
            return body
        if flag == _ZSTD:
            try:
                return zstandard.ZstdDecompressor().decompress(body)
            except zstandard.ZstdError as error:
                raise Damaged(f"compressed data is corrupt: {error}") from None
        raise Damaged("unknown blob format flag")

    def open_blob(self, sealed: bytes, blob_id: str) -> bytes:
        """Opens a blob and checks its plaintext against `blob_id`."""
        plain = self.open(sealed)
        if self.blob_id(plain) != blob_id:
            raise Damaged(f"blob {blob_id[:12]} does not hash to its id")
        return plain
