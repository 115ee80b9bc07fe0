"""The one rule for names: of jobs, queues, models, datasets, deployments and nodes.

A name is 1 to 64 characters: a letter or digit, then letters, digits, ``_``, ``.`` and
``-``. Every layer checks names against this module, so a name that one accepts the
others accept too (the gateway's ``/v2/models/NAME`` is a deployment's name, a
deployment serves a model by its name, a job's output is a dataset's name).

Imports nothing but :mod:`re`: the SDK, the replica and the data store all use it.
"""

from __future__ import annotations

import re

__all__ = ["NAME", "NAME_PART", "is_name", "pattern"]

NAME_PART = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
"""A name, unanchored, to build patterns of names from (``NAME@REF``)."""
NAME = rf"^{NAME_PART}$"
"""A name, anchored: for pydantic's ``Field(pattern=…)`` and FastAPI's path parameters."""

_NAME = re.compile(NAME_PART)


def is_name(text: str) -> bool:
    """Whether ``text`` is a whole name."""
    return _NAME.fullmatch(text) is not None


def pattern() -> re.Pattern[str]:
    """The compiled rule, matched with ``fullmatch``."""
    return _NAME
