"""The one exception hierarchy of AIOS.

User mistakes raise a subclass of :class:`InvalidInput` whose message names the field,
row or file at fault; the CLI turns it into one line on stderr and exit code 2, the API
into an HTTP 4xx. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "AiosError",
    "InvalidInput",
    "InvalidQuantity",
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
