"""The one exception hierarchy of AIOS.

User mistakes raise a subclass of :class:`InvalidInput` whose message names the field,
row or file at fault; the CLI turns it into one line on stderr and exit code 2, the API
into an HTTP 4xx. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "AiosError",
    "Busy",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "InvalidQuantity",
    "NotFound",
    "TraceError",
    "UnknownPolicy",
]


class AiosError(Exception):
    """Base class of every error AIOS raises on purpose."""


class InvalidInput(AiosError, ValueError):
    """The caller gave something AIOS cannot accept; the message says what and where."""


class InvalidQuantity(InvalidInput):
    """A resource quantity such as ``"4G"`` or ``"500m"`` could not be parsed."""


class TraceError(InvalidInput):
    """A trace file is missing or malformed; the message names the file and row."""


class UnknownPolicy(InvalidInput):
    """A scheduling policy or plugin name that is not registered."""


class NotFound(AiosError):
    """A job, queue, pipeline or other object that does not exist (or that the caller
    may not see: a tenant is never told that another tenant's job exists)."""


class Forbidden(AiosError):
    """The caller is known but may not do this (an admin-only action)."""


class Conflict(AiosError):
    """The request is well-formed but clashes with the current state (a queue that
    already exists, a job that has already ended)."""


class Busy(AiosError):
    """The control plane could not take the request in time; nothing was changed and
    the request may be sent again (HTTP 503)."""
