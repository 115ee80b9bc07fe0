"""Submissions that may be sent twice: the ``Idempotency-Key`` header.

A client that lost the answer to a submission (the control plane was killed while it
answered, a connection dropped) cannot know whether the job was created. It sends the
same request again with the same key, and gets the first answer back instead of a
second job — as Stripe's API does, and as the IETF ``Idempotency-Key`` draft describes.

A key is its caller's (another user's equal key is another key), is kept for
:data:`KEEP` seconds, and is recorded in the same transaction as the rows the
submission wrote, so a submission and its key are written together or not at all. The
same key with a different request is refused (409), never answered with the first
request's jobs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete
from sqlalchemy.orm import Session

from aios.errors import Conflict, InvalidInput
from aios.store import IdempotencyRow

__all__ = ["HEADER", "KEEP", "MAX_KEY", "Idempotency", "once"]

HEADER = "Idempotency-Key"
KEEP = 24 * 3600.0
"""Seconds a key is remembered."""
MAX_KEY = 255
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A request's key and the digest of what it asks (its route and its body)."""

    key: str
    request: str

    @classmethod
    def of(cls, key: str | None, route: str, body: Any) -> Idempotency | None:
        """The idempotency of a request to ``route`` with the JSON-able ``body``; None
        without a key. InvalidInput names a key that is empty, too long or not
        printable ASCII."""
        if key is None:
            return None
        if not 0 < len(key) <= MAX_KEY or not all(" " < c <= "~" for c in key):
            raise InvalidInput(
                f"{HEADER}: 1 to {MAX_KEY} printable ASCII characters without spaces"
            )
        canonical = json.dumps([route, body], sort_keys=True, separators=(",", ":"))
        return cls(key, hashlib.sha256(canonical.encode()).hexdigest())


def recall(session: Session, owner: str, idempotency: Idempotency, now: float) -> Any | None:
    """The answer recorded for ``owner``'s key, None when there is none (or it has
    expired); Conflict when the key was used for a different request."""
    row = session.get(IdempotencyRow, (owner, idempotency.key))
    if row is None or row.created_at < now - KEEP:
        return None
    if row.request != idempotency.request:
        raise Conflict(
            f"{HEADER} {idempotency.key!r} was used for a different request; "
            "send a new key for a new request"
        )
    return row.response


def once(
    session: Session,
    owner: str,
    idempotency: Idempotency | None,
    now: float,
    work: Callable[[], T],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
) -> T:
    """``work()``'s answer, done once per key: the recorded answer when ``owner`` sent
    this request with this key before, else ``work()`` with its answer recorded (in
    ``session``, the transaction ``work`` writes in). Expired keys are dropped here."""
    if idempotency is None:
        return work()
    recorded = recall(session, owner, idempotency, now)
    if recorded is not None:
        return decode(recorded)
    answer = work()
    session.execute(delete(IdempotencyRow).where(IdempotencyRow.created_at < now - KEEP))
    session.merge(
        IdempotencyRow(
            owner=owner,
            key=idempotency.key,
            request=idempotency.request,
            response=encode(answer),
            created_at=now,
        )
    )
    return answer
