"""Parsing of human-written resource quantities: ``"4G"``, ``"512Mi"``, ``"500m"``, ``"2"``.

Memory follows Kubernetes and Slurm usage: ``K/M/G/T`` are powers of 1024 when written
alone (as Slurm's ``--mem=4G`` means 4 GiB), ``Ki/Mi/Gi/Ti`` are always binary, and
``KB/MB/GB/TB`` are decimal. CPU is counted in millicores: ``"2"`` is 2000, ``"500m"``
is 500, ``"1.5"`` is 1500.
"""

from __future__ import annotations

import math
import re

from aios.errors import InvalidQuantity

__all__ = ["format_bytes", "parse_cpu", "parse_duration", "parse_memory"]

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)(B?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


def parse_memory(text: str | int) -> int:
    """Returns the number of bytes that ``text`` names; raises InvalidQuantity if it names none."""
    if isinstance(text, int):
        if text < 0:
            raise InvalidQuantity(f"memory must not be negative, got {text}")
        return text
    match = _MEMORY_RE.match(text)
    if match is None:
        raise InvalidQuantity(f"cannot parse memory quantity {text!r} (try 512M, 4G or 1Ti)")
    number, prefix, binary, byte_suffix = match.groups()
    power = _POWERS[prefix.upper()]
    decimal = bool(byte_suffix) and not binary and power > 0
    base = 1000 if decimal else 1024
    scale: int = base**power
    return math.ceil(float(number) * scale)


def parse_cpu(text: str | int | float) -> int:
    """Returns the millicores that ``text`` names (``"2"`` → 2000, ``"250m"`` → 250)."""
    if isinstance(text, int | float):
        value = float(text) * 1000
    else:
        stripped = text.strip()
        try:
            value = float(stripped[:-1]) if stripped.endswith("m") else float(stripped) * 1000
        except ValueError:
            raise InvalidQuantity(
                f"cannot parse cpu quantity {text!r} (try 2, 0.5 or 500m)"
            ) from None
    if value < 0 or math.isnan(value) or math.isinf(value):
        raise InvalidQuantity(f"cpu must be a finite, non-negative quantity, got {text!r}")
    return math.ceil(value)


def format_bytes(n: int) -> str:
    """Returns ``n`` bytes written with a binary prefix, e.g. ``"4.0Gi"``."""
    value = float(n)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(value) < 1024 or unit == "Ti":
            return f"{value:.0f}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


_DURATION_RE = re.compile(
    r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$"
)


def parse_duration(text: str | int | float) -> float:
    """Returns the seconds that ``text`` names: ``90``, ``"90s"``, ``"30m"``, ``"1h30m"``,
    ``"2d"``; also Slurm's ``"HH:MM:SS"`` and ``"MM:SS"``."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        stripped = text.strip()
        if ":" in stripped:
            parts = stripped.split(":")
            try:
                numbers = [float(p) for p in parts]
            except ValueError:
                numbers = []
            if len(parts) not in (2, 3) or len(numbers) != len(parts):
                raise InvalidQuantity(f"cannot parse duration {text!r} (try 90s, 30m, 1h30m)")
            seconds = 0.0
            for number in numbers:
                seconds = seconds * 60 + number
        else:
            match = _DURATION_RE.match(stripped)
            if not stripped or match is None:
                raise InvalidQuantity(f"cannot parse duration {text!r} (try 90s, 30m, 1h30m)")
            d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = d * 86400 + h * 3600 + m * 60 + s
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise InvalidQuantity(f"a duration must be finite and not negative, got {text!r}")
    return seconds
