"""The event log: one line per state change, written in the transaction that makes it.

Every state change goes through :func:`record`, which keeps the line on the session;
:func:`write_events` inserts the lines a transaction kept in one statement before it
commits, so a change and its line are committed together or not at all.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from aios.control.rows import execute_many
from aios.store import EventRow

__all__ = ["record", "write_events"]

EVENTS = "aios.events"
_INSERT_EVENTS = insert(cast(Table, EventRow.__table__))


def record(
    session: Session,
    now: float,
    kind: str,
    message: str,
    job_id: int | None = None,
    **data: Any,
) -> None:
    """Adds one line to the event log, in ``session``'s transaction: lines are kept
    on the session and written together by :func:`write_events` before it commits."""
    event = {"time": now, "job_id": job_id, "kind": kind, "message": message, "data": data}
    session.info.setdefault(EVENTS, []).append(event)


def write_events(session: Session) -> None:
    """Inserts the event lines :func:`record` kept, in one statement."""
    events = session.info.pop(EVENTS, None)
    if events:
        execute_many(session.connection(), _INSERT_EVENTS, events)
