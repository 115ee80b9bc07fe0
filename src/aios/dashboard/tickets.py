"""Short-lived signed tickets that let a browser open the live event stream.

``EventSource`` cannot send an ``Authorization`` header, and a bearer token in a URL
would sit in browser history and proxy logs for as long as the token lives. So a page
trades its token (in the header, as usual) for a ticket that names the same user, is
signed with a key that exists only in this process, and expires within a minute: a
leaked ticket is worth little, and a restart of the control plane voids them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable

from aios.control.auth import Principal
from aios.errors import InvalidInput

__all__ = ["TICKET_SECONDS", "StreamTickets"]

TICKET_SECONDS = 60.0
"""How long a ticket may be used to open (or reopen) a stream."""


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamTickets:
    """Issues tickets for a :class:`Principal` and redeems them; ``clock`` is injected
    so that tests can expire one without waiting."""

    def __init__(
        self, lifetime: float = TICKET_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = secrets.token_bytes(32)
        self.lifetime = lifetime
        self.clock = clock

    def _sign(self, body: str) -> str:
        return _encode(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, user: Principal) -> str:
        """A ticket that names ``user`` until ``lifetime`` seconds from now."""
        expires = round(self.clock() + self.lifetime, 3)
        claims = {"n": user.name, "t": user.tenant, "a": user.admin, "e": expires}
        body = _encode(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def redeem(self, ticket: str) -> Principal:
        """The user a valid, unexpired ``ticket`` names; InvalidInput otherwise."""
        body, _, signature = ticket.partition(".")
        # Bytes: compare_digest refuses str with non-ASCII characters (a 500, not a 400).
        given = signature.encode("utf-8", "surrogateescape")
        if not body or not hmac.compare_digest(given, self._sign(body).encode()):
            raise InvalidInput("ticket: not one this control plane issued")
        claims = json.loads(_decode(body))
        if float(claims["e"]) < self.clock():
            raise InvalidInput("ticket: expired; ask for a new one")
        return Principal(str(claims["n"]), claims["t"], bool(claims["a"]))
