"""``GET /api/v1/stream``: new rows of the events table as server-sent events.

A page opens one stream and re-fetches what an event says has changed, so a state
change reaches it within :data:`POLL` seconds plus a fetch. The caller is named by a
ticket from ``POST /api/v1/stream/ticket`` (see :mod:`aios.dashboard.tickets`) and sees
exactly the events ``GET /api/v1/events`` would show them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import func, select

from aios.control.deps import User
from aios.control.ops import ControlOps
from aios.control.specs import MAX_ID
from aios.dashboard.tickets import StreamTickets
from aios.errors import InvalidInput
from aios.store import Database
from aios.store.models import EventRow

__all__ = ["HEARTBEAT", "POLL", "TicketView", "stream_router"]

POLL = 0.5
"""Seconds between two looks at the events table: well inside the two seconds a page
may take to show a change."""
HEARTBEAT = 15.0
"""Seconds of quiet after which a comment line keeps proxies from closing the stream."""


class TicketView(BaseModel):
    ticket: str
    expires_in: float


def _frame(event: str, data: object, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def latest_event_id(db: Database) -> int:
    """The id of the newest event (0 when there is none)."""
    with db.sessions() as session:
        return int(session.scalar(select(func.max(EventRow.id))) or 0)


def stream_router(ops: ControlOps, db: Database, tickets: StreamTickets) -> APIRouter:
    router = APIRouter(prefix="/stream", tags=["dashboard"])

    @router.post("/ticket", response_model=TicketView)
    def ticket(user: User) -> TicketView:
        """A ticket naming the caller, to open the stream with (EventSource cannot set
        headers)."""
        return TicketView(ticket=tickets.issue(user), expires_in=tickets.lifetime)

    @router.get("")
    async def stream(
        request: Request,
        ticket: Annotated[str, Query(max_length=1000)],
        since: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    ) -> StreamingResponse:
        """Events after ``since`` (default: from now on), each as an SSE ``change``
        whose id is the event's; a browser that reconnects sends ``Last-Event-ID``."""
        user = tickets.redeem(ticket)
        resume = request.headers.get("last-event-id", "")
        if resume.isascii() and resume.isdigit():  # "²" is a digit to isdigit, not to int
            since = int(resume)
        cursor = since if since is not None else await asyncio.to_thread(latest_event_id, db)
        if cursor > MAX_ID:
            raise InvalidInput(f"Last-Event-ID: {cursor} is not an event id")

        async def frames() -> AsyncIterator[bytes]:
            position = cursor
            yield _frame("ready", {"since": position})
            quiet = 0.0
            while not await request.is_disconnected():
                rows = await asyncio.to_thread(ops.events, user, None, position)
                for row in rows:
                    position = row.id
                    yield _frame("change", row.model_dump(), row.id)
                if rows:
                    quiet = 0.0
                elif quiet >= HEARTBEAT:
                    quiet = 0.0
                    yield b": still here\n\n"
                await asyncio.sleep(POLL)
                quiet += POLL

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)

    return router
