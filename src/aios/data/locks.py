"""Repository locks, as restic keeps them: files under ``locks/``.

Writers, readers and copies hold a shared lock; `gc` holds an exclusive one, so it
never deletes a pack that a running writer has stored but not yet named in a snapshot.
A lock is stale — and ignored — when it was not refreshed for `STALE_AFTER`, or when
it names this host and a process that no longer runs (a writer killed by SIGKILL).
Taking a lock is "write mine, then look": if a conflicting lock is seen, mine is
removed and `Busy` raised, so two contenders may both back off but never both win.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aios.data.backend import Backend
from aios.errors import Busy, NotFound

__all__ = ["REFRESH_AFTER", "STALE_AFTER", "RepoLock", "acquire", "stale_locks"]

STALE_AFTER = timedelta(minutes=30)
REFRESH_AFTER = timedelta(minutes=5)


@dataclass
class RepoLock:
    """A lock this process holds; `refresh` keeps it from going stale."""

    backend: Backend
    path: str
    exclusive: bool
    taken: datetime
    refreshed: float = field(default_factory=time.monotonic)

    def refresh_if_due(self) -> None:
        """Rewrites the lock with the current time if it is `REFRESH_AFTER` old."""
        if time.monotonic() - self.refreshed < REFRESH_AFTER.total_seconds():
            return
        now = datetime.now(UTC)
        self.backend.put(self.path, _body(self.exclusive, now))
        self.taken, self.refreshed = now, time.monotonic()

    def release(self) -> None:
        self.backend.delete(self.path)


def _body(exclusive: bool, when: datetime) -> bytes:
    record = {
        "exclusive": exclusive,
        "time": when.isoformat(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }
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


def _live_locks(backend: Backend, skip: str) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    live: list[dict[str, object]] = []
    for path in backend.list("locks"):
        if path == skip:
            continue
        try:
            record = json.loads(backend.get(path))
        except (NotFound, ValueError):
            continue
        if not _is_stale(record, now):
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
    """Takes a lock; raises `Busy` if a live conflicting lock exists."""
    now = datetime.now(UTC)
    path = f"locks/{secrets.token_hex(16)}"
    backend.put(path, _body(exclusive, now))
    others = _live_locks(backend, skip=path)
    conflicting = others if exclusive else [r for r in others if r.get("exclusive")]
    if conflicting:
        backend.delete(path)
        holder = conflicting[0]
        kind = "an exclusive" if holder.get("exclusive") else "a shared"
        raise Busy(
            f"the repository is locked: {kind} lock held by pid {holder.get('pid')} on "
            f"{holder.get('hostname')} since {holder.get('time')}; try again when it ends"
        )
    return RepoLock(backend=backend, path=path, exclusive=exclusive, taken=now)
