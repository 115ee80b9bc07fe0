"""Repository locks, as restic keeps them: files under ``locks/``.

Writers, readers and copies hold a shared lock; `gc` holds an exclusive one, so it
never deletes a pack that a running writer has stored but not yet named in a snapshot.
A lock is stale — and ignored — when it was not refreshed for `STALE_AFTER`, or when
it names this host and a process that no longer runs (a writer killed by SIGKILL).
Taking a lock is "write mine, then look": if a conflicting lock is seen, mine is
removed and `Busy` raised, so two contenders may both back off but never both win.

A naming lock (`hold_name`) is an exclusive lock on one name only — ``dataset:NAME`` —
held for the few reads and one write between "which version number is next" and the
snapshot that takes it. Backends offer no compare-and-swap (fsspec has none, S3's
conditional writes are not everywhere), so the number cannot be claimed atomically;
the same write-then-look, retried with jittered exponential backoff until a deadline,
serialises the claims instead. It was chosen over renumbering after the fact (save,
re-read, let the later snapshot take the next number) because a version number, once
printed to the user or recorded in lineage, must never change. Naming locks neither
block nor are blocked by the repository locks (a `gc` waits for no add's numbering);
a killed holder's lock goes stale by the same rules.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aios.data.backend import Backend
from aios.errors import Busy, NotFound

__all__ = [
    "NAME_WAIT",
    "REFRESH_AFTER",
    "STALE_AFTER",
    "RepoLock",
    "acquire",
    "acquire_name",
    "hold_name",
    "stale_locks",
]

STALE_AFTER = timedelta(minutes=30)
REFRESH_AFTER = timedelta(minutes=5)
NAME_WAIT = timedelta(seconds=60)
"""How long `acquire_name` retries before it gives up with `Busy`."""
_FIRST_BACKOFF = 0.005
_MAX_BACKOFF = 0.5


@dataclass
class RepoLock:
    """A lock this process holds; `refresh` keeps it from going stale."""

    backend: Backend
    path: str
    exclusive: bool
    taken: datetime
    refreshed: float = field(default_factory=time.monotonic)
    name: str | None = None

    def refresh_if_due(self) -> None:
        """Rewrites the lock with the current time if it is `REFRESH_AFTER` old."""
        if time.monotonic() - self.refreshed < REFRESH_AFTER.total_seconds():
            return
        now = datetime.now(UTC)
        self.backend.put(self.path, _body(self.exclusive, now, self.name))
        self.taken, self.refreshed = now, time.monotonic()

    def release(self) -> None:
        self.backend.delete(self.path)


def _body(exclusive: bool, when: datetime, name: str | None = None) -> bytes:
    record: dict[str, object] = {
        "exclusive": exclusive,
        "time": when.isoformat(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }
    if name is not None:
        record["name"] = name
    return json.dumps(record).encode()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(record: dict[str, object], now: datetime) -> bool:
    taken = datetime.fromisoformat(str(record["time"]))
    if now - taken >= STALE_AFTER:
        return True
    pid = record.get("pid")
    return (
        record.get("hostname") == socket.gethostname()
        and isinstance(pid, int)
        and not _pid_alive(pid)
    )


def _live_locks(backend: Backend, skip: str, name: str | None) -> list[dict[str, object]]:
    """The live locks other than `skip` on `name` (None: the repository locks)."""
    now = datetime.now(UTC)
    live: list[dict[str, object]] = []
    for path in backend.list("locks"):
        if path == skip:
            continue
        try:
            record = json.loads(backend.get(path))
        except (NotFound, ValueError):
            continue
        if record.get("name") == name and not _is_stale(record, now):
            live.append(record)
    return live


def stale_locks(backend: Backend) -> list[str]:
    """Paths of locks that no live holder keeps (safe to delete)."""
    now = datetime.now(UTC)
    stale: list[str] = []
    for path in backend.list("locks"):
        try:
            record = json.loads(backend.get(path))
        except NotFound:
            continue
        except ValueError:
            stale.append(path)
            continue
        if _is_stale(record, now):
            stale.append(path)
    return stale


def acquire(backend: Backend, *, exclusive: bool) -> RepoLock:
    """Takes a repository lock; raises `Busy` if a live conflicting lock exists."""
    return _take(backend, exclusive=exclusive, name=None)


def _take(backend: Backend, *, exclusive: bool, name: str | None) -> RepoLock:
    now = datetime.now(UTC)
    path = f"locks/{secrets.token_hex(16)}"
    backend.put(path, _body(exclusive, now, name))
    others = _live_locks(backend, skip=path, name=name)
    conflicting = others if exclusive else [r for r in others if r.get("exclusive")]
    if conflicting:
        backend.delete(path)
        holder = conflicting[0]
        kind = "an exclusive" if holder.get("exclusive") else "a shared"
        what = "the repository is" if name is None else f"{name} is"
        raise Busy(
            f"{what} locked: {kind} lock held by pid {holder.get('pid')} on "
            f"{holder.get('hostname')} since {holder.get('time')}; try again when it ends"
        )
    return RepoLock(backend=backend, path=path, exclusive=exclusive, taken=now, name=name)


def acquire_name(
    backend: Backend,
    name: str,
    *,
    wait: timedelta = NAME_WAIT,
    sleep: Callable[[float], None] = time.sleep,
) -> RepoLock:
    """Takes the exclusive lock on `name`, retrying while another holder has it.

    Contenders that saw each other both back off, each for a random time up to a
    doubling bound ("full jitter"), so they soon take turns. Raises `Busy`, naming the
    holder, if the lock is still held after `wait`.
    """
    deadline = time.monotonic() + wait.total_seconds()
    bound = _FIRST_BACKOFF
    while True:
        try:
            return _take(backend, exclusive=True, name=name)
        except Busy:
            if time.monotonic() >= deadline:
                raise
        sleep(min(random.uniform(0, bound), max(deadline - time.monotonic(), 0.0)))
        bound = min(bound * 2, _MAX_BACKOFF)


@contextmanager
def hold_name(backend: Backend, name: str, *, wait: timedelta = NAME_WAIT) -> Iterator[RepoLock]:
    """Holds the lock on `name` for the body of a ``with`` (see `acquire_name`)."""
    lock = acquire_name(backend, name, wait=wait)
    try:
        yield lock
    finally:
        lock.release()
