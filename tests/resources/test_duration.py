"""Durations as users write them: seconds, 30m, 1h30m, 2d, Slurm's HH:MM:SS."""

from __future__ import annotations

import pytest

from aios.errors import InvalidQuantity
from aios.resources import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1d2h3m4s", 93784.0),
        ("01:00:00", 3600.0),
        ("10:30", 630.0),
        ("0.5", 0.5),
    ],
)
def test_durations_parse_to_seconds(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1x", "-5", "1:2:3:4", "a:b", float("inf"), -1])
def test_bad_durations_name_what_was_given(text: str | float) -> None:
    with pytest.raises(InvalidQuantity, match="duration"):
        parse_duration(text)
