"""Bearer tokens and who may see what.

A token belongs to a user; a user is an admin or a member of one tenant (a queue).
Only SHA-256 digests of tokens are stored. The first start creates an admin and writes
its token to ``$AIOS_HOME/admin.token`` (mode 0600).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aios.errors import Conflict, Forbidden, NotFound
from aios.store import Database, UserRow

__all__ = ["ADMIN", "Principal", "TokenBook", "digest"]

TOKEN_PREFIX = "aios_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user's name, tenant and whether they are an admin."""

    name: str
    tenant: str | None
    admin: bool

    def may_see(self, queue: str) -> bool:
        return self.admin or self.tenant == queue

    def require_admin(self, action: str) -> None:
        if not self.admin:
            raise Forbidden(f"only an admin may {action}")

    def check_queue(self, queue: str) -> None:
        """Refuses to act on a queue the caller does not belong to."""
        if not self.may_see(queue):
            raise Forbidden(f"user {self.name} belongs to queue {self.tenant!r}, not {queue!r}")


ADMIN = Principal("admin", None, True)
"""The caller when auth is off (allowed on loopback only)."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    """Creates users with tokens and resolves a token to its user."""

    def __init__(self, db: Database, home: Path) -> None:
        self.db = db
        self.admin_token_path = home / "admin.token"
        self._cache: dict[str, Principal] = {}

    def bootstrap(self) -> str | None:
        """Creates the first admin when there are no users; returns where its token
        was written, or None when users already exist."""
        with self.db.transaction() as session:
            if session.scalars(select(UserRow).limit(1)).first() is not None:
                return None
        self.create("admin", tenant=None, admin=True, path=self.admin_token_path)
        return str(self.admin_token_path)

    def create(self, name: str, tenant: str | None, admin: bool, path: Path | None = None) -> str:
        """Creates user ``name`` and returns its token (shown once, stored hashed)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.db.transaction() as session:
                session.add(
                    UserRow(
                        name=name,
                        tenant=tenant,
                        admin=admin,
                        token_hash=digest(token),
                        created_at=time.time(),
                    )
                )
        except IntegrityError:
            raise Conflict(f"a user named {name!r} already exists") from None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            # The mode above holds only for a new file: a token file left behind by an
            # earlier home may be readable by others.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(token + "\n")
        return token

    def resolve(self, token: str) -> Principal:
        """The user holding ``token``; NotFound when it is no one's."""
        key = digest(token)
        known = self._cache.get(key)
        if known is not None:
            return known
        with self.db.sessions() as session:
            user = session.scalars(select(UserRow).where(UserRow.token_hash == key)).first()
            if user is None:
                raise NotFound("unknown token")
            principal = Principal(user.name, user.tenant, user.admin)
        self._cache[key] = principal
        return principal
