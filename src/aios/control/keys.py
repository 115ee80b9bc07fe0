"""The control plane's own keys: random bytes made the first time one is asked for and
kept in the database (``control_secrets``), so that what they signed — the token a
running job holds, the secret a serving replica checks — still holds after a restart.

Two control planes that share a database share their keys; the first to make one wins
the insert and the other reads it back.
"""

from __future__ import annotations

import base64
import secrets

from sqlalchemy.exc import IntegrityError

from aios.store import Database, SecretRow

__all__ = ["KEY_BYTES", "control_key"]

KEY_BYTES = 32


def control_key(db: Database, name: str) -> bytes:
    """The key called ``name``: read from the database, or made and stored there."""
    with db.sessions() as session:
        row = session.get(SecretRow, name)
        if row is not None:
            return base64.b64decode(row.value)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        with db.transaction() as session:
            session.add(SecretRow(name=name, value=base64.b64encode(key).decode()))
    except IntegrityError:  # another control plane made it first: theirs is the key
        with db.sessions() as session:
            row = session.get(SecretRow, name)
            assert row is not None
            return base64.b64decode(row.value)
    return key
