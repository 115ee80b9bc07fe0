"""Naming locks: one holder per name, independent of the repository locks."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from aios.data.backend import LocalBackend
from aios.data.locks import acquire, acquire_name, hold_name, stale_locks
from aios.errors import Busy


def test_a_held_name_is_refused_to_a_second_taker_after_the_wait(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    waits: list[float] = []
    refused = pytest.raises(Busy, match=r"dataset:digits is locked: an exclusive lock held by")
    with hold_name(backend, "dataset:digits"), refused:
        acquire_name(backend, "dataset:digits", wait=timedelta(0), sleep=waits.append)
    assert backend.list("locks") == []  # the loser took its own lock file back too
    acquire_name(backend, "dataset:digits", wait=timedelta(0)).release()


def test_a_taker_retries_until_the_holder_lets_go(tmp_path: Path) -> None:
    """The holder releases while the second taker is backing off; the taker then wins."""
    backend = LocalBackend(tmp_path)
    held = acquire_name(backend, "dataset:digits")
    waits: list[float] = []

    def release_during_backoff(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            held.release()

    taken = acquire_name(backend, "dataset:digits", sleep=release_during_backoff)
    assert len(waits) == 3 and all(w >= 0 for w in waits)
    assert taken.name == "dataset:digits"
    taken.release()


def test_different_names_and_repository_locks_do_not_conflict(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    with hold_name(backend, "dataset:digits", wait=timedelta(0)):
        with hold_name(backend, "dataset:photos", wait=timedelta(0)):
            acquire(backend, exclusive=True).release()  # gc does not wait for numbering
        writer = acquire(backend, exclusive=False)
    with hold_name(backend, "dataset:digits", wait=timedelta(0)):
        pass  # nor does numbering wait for a writer's shared lock
    writer.release()


def test_the_naming_lock_of_a_killed_holder_is_stale(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    lock = acquire_name(backend, "dataset:digits")
    record = json.loads(backend.get(lock.path))
    backend.put(lock.path, json.dumps({**record, "pid": int(dead.stdout)}).encode())
    assert stale_locks(backend) == [lock.path]
    acquire_name(backend, "dataset:digits", wait=timedelta(0)).release()
