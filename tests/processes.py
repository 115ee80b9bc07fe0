"""This machine's processes as the tests look for them, by one pass over /proc: by
command line (a test's own, made unique where two runs could meet) or by group."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

__all__ = ["in_group", "naming", "with_argv"]


def with_argv(argv: Sequence[str]) -> list[int]:
    """The processes whose command line is exactly ``argv``."""
    wanted = b"".join(os.fsencode(arg) + b"\0" for arg in argv)
    return [pid for pid, cmdline in _cmdlines() if cmdline == wanted]


def naming(text: str) -> list[int]:
    """The processes whose command line contains ``text`` (in one argument or across
    several, which the NULs between them separate)."""
    wanted = os.fsencode(text)
    return [pid for pid, cmdline in _cmdlines() if wanted in cmdline]


def in_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid``, zombies included."""
    found = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            found.append(pid)
    return found


def _cmdlines() -> Iterator[tuple[int, bytes]]:
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                yield pid, f.read()
        except OSError:
            continue


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]
