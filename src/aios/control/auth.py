"""Bearer tokens and who may see what.

A token belongs to a user; a user is an admin or a member of one tenant (a queue).
Only SHA-256 digests of users' tokens are stored; a token stops working at its expiry
or once revoked. The first start creates an admin and writes its token to
``$AIOS_HOME/admin.token`` (mode 0600).

A job's own token (``AIOS_TOKEN`` in its environment) is not stored at all: it is
``aiosj_<job>_<attempt>_<signature>``, the signature an HMAC of the job and attempt
under a key of the control plane (:mod:`aios.control.keys`). Minting one therefore costs
the launch no database write, and it holds exactly while its attempt is the job's
running attempt: a retry's token replaces the last one, and the job's end revokes it.
It carries its submitter's name and the rights of the job's queue, never an admin's
unless the job was submitted with ``as_admin`` by an admin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aios.control.keys import control_key
from aios.errors import Conflict, Forbidden, NotFound
from aios.store import Database, JobRow, TokenRow, UserRow

__all__ = ["ADMIN", "JOB_TOKEN_PREFIX", "Principal", "TokenBook", "TokenInfo", "digest"]

TOKEN_PREFIX = "aios_"
JOB_TOKEN_PREFIX = "aiosj_"
JOB_TOKEN_KEY = "job-tokens"
_JOB_TOKEN = re.compile(r"aiosj_(\d{1,10})_(\d{1,10})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user's name, tenant and whether they are an admin; ``job`` is
    the job whose own token was presented (None: a user's token)."""

    name: str
    tenant: str | None
    admin: bool
    job: int | None = None

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


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never its text. ``id`` is None for a job's own token, which
    ``job`` and ``attempt`` name instead."""

    id: int | None
    user: str
    tenant: str | None
    admin: bool
    note: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    job: int | None = None
    attempt: int | None = None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Known:
    principal: Principal
    token_id: int
    expires_at: float | None


class TokenBook:
    """Creates users and their tokens, mints jobs' tokens, and resolves a token to the
    one it belongs to."""

    def __init__(self, db: Database, home: Path) -> None:
        self.db = db
        self.admin_token_path = home / "admin.token"
        self._lock = threading.Lock()
        self._cache: dict[str, _Known] = {}
        self._key: bytes | None = None

    # -- users' tokens ----------------------------------------------------------------
    def bootstrap(self) -> str | None:
        """Creates the first admin when there are no users; returns where its token
        was written, or None when users already exist."""
        with self.db.transaction() as session:
            if session.scalars(select(UserRow).limit(1)).first() is not None:
                return None
        self.create("admin", tenant=None, admin=True, path=self.admin_token_path)
        return str(self.admin_token_path)

    def create(
        self,
        name: str,
        tenant: str | None,
        admin: bool,
        path: Path | None = None,
        *,
        expires_at: float | None = None,
        note: str = "",
    ) -> str:
        """Creates user ``name`` with a first token and returns the token (shown once,
        stored hashed). With ``path``, also writes it there, mode 0600."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        try:
            with self.db.transaction() as session:
                user = UserRow(name=name, tenant=tenant, admin=admin, created_at=now)
                session.add(user)
                session.flush()
                session.add(
                    TokenRow(
                        user_id=user.id,
                        token_hash=digest(token),
                        note=note,
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
        except IntegrityError:
            raise Conflict(f"a user named {name!r} already exists") from None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            # The mode above holds only for a new file: a token file left behind by an
            # earlier home may be readable by others.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(token + "\n")
        return token

    def tokens(self, caller: Principal) -> list[TokenInfo]:
        """The tokens ``caller`` may see: every user's token and every running job's
        for an admin; a member's own tokens and the running jobs of their queue."""
        with self.db.sessions() as session:
            query = select(TokenRow, UserRow).join(UserRow, TokenRow.user_id == UserRow.id)
            if not caller.admin:
                query = query.where(UserRow.name == caller.name)
            listed = [
                TokenInfo(
                    id=token.id,
                    user=user.name,
                    tenant=user.tenant,
                    admin=user.admin,
                    note=token.note,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                )
                for token, user in session.execute(query.order_by(TokenRow.id)).all()
            ]
            jobs = select(JobRow).where(JobRow.state == "running").order_by(JobRow.id)
            if not caller.admin:
                jobs = jobs.where(JobRow.queue == caller.tenant)
            running = list(session.scalars(jobs))
            revoked = self._revoked_jobs(session, [row.id for row in running])
            for row in running:
                listed.append(
                    TokenInfo(
                        id=None,
                        user=row.owner,
                        tenant=row.queue,
                        admin=row.as_admin,
                        note=f"job {row.id}",
                        created_at=row.started_at or row.submitted_at,
                        expires_at=None,
                        revoked_at=revoked.get((row.id, row.attempts)),
                        job=row.id,
                        attempt=row.attempts,
                    )
                )
        return listed

    def revoke(self, caller: Principal, token_id: int) -> TokenInfo:
        """Revokes the stored token ``token_id`` (an admin: anyone's; a member: their
        own); NotFound for a token the caller may not see. Revoking twice is no error."""
        with self.db.transaction() as session:
            found = session.execute(
                select(TokenRow, UserRow)
                .join(UserRow, TokenRow.user_id == UserRow.id)
                .where(TokenRow.id == token_id)
            ).first()
            if found is None or not (caller.admin or found[1].name == caller.name):
                raise NotFound(f"no token {token_id}")
            token, user = found
            if token.revoked_at is None:
                token.revoked_at = time.time()
            info = TokenInfo(
                id=token.id,
                user=user.name,
                tenant=user.tenant,
                admin=user.admin,
                note=token.note,
                created_at=token.created_at,
                expires_at=token.expires_at,
                revoked_at=token.revoked_at,
            )
        self._forget(lambda known: known.token_id == token_id)
        return info

    # -- jobs' tokens -----------------------------------------------------------------
    def job_token(self, job_id: int, attempt: int) -> str:
        """The token of attempt ``attempt`` of job ``job_id`` (the same every time it is
        asked for: nothing is stored)."""
        return f"{JOB_TOKEN_PREFIX}{job_id}_{attempt}_{self._sign(job_id, attempt)}"

    def revoke_job(self, caller: Principal, job_id: int) -> TokenInfo:
        """Revokes the token of job ``job_id``'s running attempt before the job ends
        (its end revokes it anyway); NotFound for a job the caller may not see, Conflict
        for one that does not run."""
        with self.db.transaction() as session:
            row = session.get(JobRow, job_id)
            if row is None or not caller.may_see(row.queue):
                raise NotFound(f"no job {job_id}")
            if row.state != "running":
                raise Conflict(f"job {job_id} is {row.state}: it holds no token")
            now = time.time()
            revoked = self._revoked_jobs(session, [job_id]).get((job_id, row.attempts))
            if revoked is None:
                session.add(
                    TokenRow(job_id=job_id, attempt=row.attempts, created_at=now, revoked_at=now)
                )
                revoked = now
            return TokenInfo(
                id=None,
                user=row.owner,
                tenant=row.queue,
                admin=row.as_admin,
                note=f"job {job_id}",
                created_at=row.started_at or row.submitted_at,
                expires_at=None,
                revoked_at=revoked,
                job=job_id,
                attempt=row.attempts,
            )

    # -- resolving --------------------------------------------------------------------
    def resolve(self, token: str) -> Principal:
        """The one holding ``token``; NotFound when it is no one's, expired or revoked."""
        if token.startswith(JOB_TOKEN_PREFIX):
            return self._resolve_job(token)
        key = digest(token)
        now = time.time()
        with self._lock:
            known = self._cache.get(key)
        if known is None:
            with self.db.sessions() as session:
                found = session.execute(
                    select(TokenRow, UserRow)
                    .join(UserRow, TokenRow.user_id == UserRow.id)
                    .where(TokenRow.token_hash == key, TokenRow.revoked_at.is_(None))
                ).first()
                if found is None:
                    raise NotFound("unknown token")
                row, user = found
                principal = Principal(user.name, user.tenant, user.admin)
                known = _Known(principal, row.id, row.expires_at)
            with self._lock:
                self._cache[key] = known
        if known.expires_at is not None and now >= known.expires_at:
            raise NotFound("expired token")
        return known.principal

    def _resolve_job(self, token: str) -> Principal:
        match = _JOB_TOKEN.fullmatch(token)
        if match is None:
            raise NotFound("unknown token")
        job_id, attempt = int(match[1]), int(match[2])
        if not hmac.compare_digest(match[3], self._sign(job_id, attempt)):
            raise NotFound("unknown token")
        with self.db.sessions() as session:
            row = session.get(JobRow, job_id)
            if row is None or row.state != "running" or row.attempts != attempt:
                raise NotFound("the token of a job that no longer runs")
            if self._revoked_jobs(session, [job_id]).get((job_id, attempt)) is not None:
                raise NotFound("revoked token")
            if row.as_admin:  # its admin submitter's rights, of every queue
                return Principal(row.owner, None, True, job=job_id)
            return Principal(row.owner, row.queue, False, job=job_id)

    # -- helpers ----------------------------------------------------------------------
    def _sign(self, job_id: int, attempt: int) -> str:
        if self._key is None:
            self._key = control_key(self.db, JOB_TOKEN_KEY)
        mac = hmac.new(self._key, f"{job_id}:{attempt}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    @staticmethod
    def _revoked_jobs(session: Session, job_ids: list[int]) -> dict[tuple[int, int], float]:
        """When each (job, attempt) of ``job_ids`` had its token revoked."""
        if not job_ids:
            return {}
        rows = session.scalars(
            select(TokenRow).where(
                TokenRow.job_id.in_(job_ids),
                or_(TokenRow.revoked_at.is_not(None), TokenRow.token_hash.is_(None)),
            )
        )
        return {
            (int(r.job_id), int(r.attempt)): float(r.revoked_at or r.created_at)
            for r in rows
            if r.job_id is not None and r.attempt is not None
        }

    def _forget(self, matches: Callable[[_Known], bool]) -> None:
        with self._lock:
            for key in [k for k, v in self._cache.items() if matches(v)]:
                del self._cache[key]
