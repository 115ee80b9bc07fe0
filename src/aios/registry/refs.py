"""How models, versions and aliases are named, and ``NAME@REF`` references parsed.

Kept apart from the pydantic specs so the CLI can parse a reference without loading
pydantic.
"""

from __future__ import annotations

import re

from aios.errors import InvalidInput
from aios.names import NAME, NAME_PART

__all__ = ["ALIAS", "DATASET", "LATEST", "NAME", "REFERENCE", "parse_reference"]

ALIAS = rf"^(?!latest$)(?![0-9]+$){NAME_PART}$"
"""An alias: a name that is neither ``latest`` nor a number, which are references too
(Python's ``re`` only: pydantic's regex engine has no look-ahead)."""
REFERENCE = rf"^(latest|[1-9][0-9]{{0,17}}|{NAME_PART})$"
"""What may follow ``NAME@``: ``latest``, a version number, or an alias."""
DATASET = rf"^{NAME_PART}@{NAME_PART}$"
"""A dataset version as ``NAME@VERSION`` (kept verbatim until the data store exists)."""
LATEST = "latest"
VERSION = r"^[1-9][0-9]{0,17}$"


def parse_reference(text: str) -> tuple[str, str]:
    """Splits ``NAME@3``, ``NAME@production`` or ``NAME`` (the latest version) into the
    name and the reference; raises InvalidInput naming what is malformed."""
    name, sep, ref = text.partition("@")
    if not re.fullmatch(NAME, name):
        raise InvalidInput(f"{text!r}: {name!r} is not a model name (letters, digits, _.-)")
    if not sep:
        return name, LATEST
    if not re.fullmatch(REFERENCE, ref) or (ref.isdigit() and not re.fullmatch(VERSION, ref)):
        raise InvalidInput(
            f"{text!r}: after '@' comes a version number, an alias or 'latest', not {ref!r}"
        )
    return name, ref
