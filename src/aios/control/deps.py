"""The API's dependencies: who is calling, from an ``Authorization: Bearer …`` header.

One parser of the header for the whole control plane: the REST routes (through FastAPI's
``Depends``), the perimeter that refuses an unauthenticated body before reading it, and
the inference gateway all name the caller with :func:`authenticate`.

Route modules take the caller as a parameter typed :data:`User`; FastAPI reads the
annotation from the module, so ``User`` must be imported at module level there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aios.control.auth import ADMIN, Principal, TokenBook
from aios.errors import NotFound

__all__ = ["Unauthorized", "User", "authenticate", "bearer_token", "caller"]


class Unauthorized(Exception):
    """No token, or one that belongs to no one (HTTP 401)."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (the scheme in any case);
    None when there is no header or it is not a bearer token."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def authenticate(tokens: TokenBook, auth: bool, authorization: str | None) -> Principal | None:
    """The caller named by an ``Authorization`` header; None when there is none or it
    is no one's. Without ``auth`` (loopback only) everyone is the admin."""
    if not auth:
        return ADMIN
    token = bearer_token(authorization)
    if token is None:
        return None
    try:
        return tokens.resolve(token)
    except NotFound:
        return None


def caller(request: Request) -> Principal:
    """The user whose bearer token came with the request; 401 without one."""
    state = request.app.state
    if not state.auth:
        return ADMIN
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer …)")
    book: TokenBook = state.tokens
    try:
        return book.resolve(token)
    except NotFound:
        raise Unauthorized("unknown or revoked token") from None


User = Annotated[Principal, Depends(caller)]
