from __future__ import annotations

import pytest

from aios.errors import InvalidInput, InvalidQuantity
from aios.resources import format_bytes, parse_cpu, parse_memory

KI = 1024
MI = 1024**2
GI = 1024**3
TI = 1024**4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4G", 4 * GI),
        ("4g", 4 * GI),
        ("4Gi", 4 * GI),
        ("4GiB", 4 * GI),
        ("512Mi", 512 * MI),
        ("512M", 512 * MI),
        ("1K", KI),
        ("1Ti", TI),
        ("1.5G", 3 * GI // 2),
        ("10GB", 10 * 1000**3),
        ("10gb", 10 * 1000**3),
        ("500MB", 500 * 1000**2),
        ("2KB", 2000),
        ("100", 100),
        ("100B", 100),
        (" 4G ", 4 * GI),
        ("0", 0),
        (0, 0),
        (4096, 4096),
    ],
)
def test_parse_memory_reads_binary_and_decimal_units(text: str | int, expected: int) -> None:
    """K/M/G/T alone and Ki/Mi/Gi/Ti are powers of 1024; KB/MB/GB/TB are powers of 1000."""
    assert parse_memory(text) == expected


def test_parse_memory_rounds_fractional_bytes_up() -> None:
    """A fraction of a byte is rounded up to the next whole byte."""
    assert parse_memory("0.5K") == 512
    assert parse_memory("1.0001K") == 1025


@pytest.mark.parametrize("text", ["", "G", "four", "4X", "-1G", "4 G B extra", "1e3", "4GG", -1])
def test_parse_memory_rejects_what_names_no_quantity(text: str | int) -> None:
    """A string that names no amount of memory, or a negative integer, is InvalidQuantity."""
    with pytest.raises(InvalidQuantity, match="memory"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2", 2000),
        ("1.5", 1500),
        ("500m", 500),
        ("250m", 250),
        (" 2 ", 2000),
        ("0", 0),
        ("0.0001", 1),
        (2, 2000),
        (0.5, 500),
        (1.25, 1250),
    ],
)
def test_parse_cpu_counts_millicores(text: str | int | float, expected: int) -> None:
    """Cores become millicores (``"1.5"`` → 1500), ``"500m"`` is already millicores."""
    assert parse_cpu(text) == expected


@pytest.mark.parametrize("text", ["", "m", "two", "1.5x", "-1", "-500m", "nan", "inf", -1, -0.5])
def test_parse_cpu_rejects_negative_or_unparsable(text: str | int | float) -> None:
    """A cpu quantity that is not a finite, non-negative number is InvalidQuantity."""
    with pytest.raises(InvalidQuantity, match="cpu"):
        parse_cpu(text)


def test_invalid_quantity_is_an_invalid_input() -> None:
    """InvalidQuantity is a user mistake: callers can catch it as InvalidInput or ValueError."""
    assert issubclass(InvalidQuantity, InvalidInput)
    assert issubclass(InvalidQuantity, ValueError)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, "0"), (1023, "1023"), (1024, "1.0Ki"), (4 * GI, "4.0Gi"), (3 * MI // 2, "1.5Mi")],
)
def test_format_bytes_writes_binary_prefixes(n: int, expected: str) -> None:
    """Bytes are written with the largest binary prefix that keeps the number below 1024."""
    assert format_bytes(n) == expected


def test_format_bytes_stops_at_tebibytes() -> None:
    """Amounts past 1024 Ti stay in Ti rather than inventing a larger prefix."""
    assert format_bytes(2048 * TI) == "2048.0Ti"
