"""Resuming: a write killed midway is carried on by the next run, and leaves no garbage
that `gc` keeps.

The `aios` commands run as real processes, killed with SIGKILL once a given number of
packs is stored; packs are made small (256 KiB, an index file every 512 KiB) so that a
few MiB make dozens of them, the same proportions as 16 MiB packs and 32 MiB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aios.cli.main import app
from aios.data import LocalBackend, Repository
from aios.data.datasets import DataStore
from aios.data.gc import TEMPORARY_GRACE
from aios.data.index import Index
from aios.data.packer import Packer
from tests.data.store.conftest import PASSPHRASE, new_repo, random_bytes, reopen, same_tree

# Runs `aios ARGS...` after making packs small; with STOP > 0 the process stores STOP
# packs (each with the index file that follows it, if one is due), says so, and stops
# before storing another: where the test kills it.
_AIOS = """
import sys
import threading

import aios.data.packer as packer

packer.PACK_SIZE = 256 * 1024
packer.INDEX_BYTES = 512 * 1024
STOP = int(sys.argv[1])
write = packer.Packer._write
gate = threading.Lock()
started = finished = 0


def gated_write(self: packer.Packer, writer: object) -> None:
    global started, finished
    with gate:
        hold = STOP and started >= STOP
        started += 1
    if hold:
        threading.Event().wait()  # until the test kills this process
    write(self, writer)
    with gate:
        finished += 1
        if finished == STOP:
            print("stored", STOP, "packs", flush=True)


packer.Packer._write = gated_write

from aios.cli.main import app

app(sys.argv[2:], prog_name="aios")
"""

DATA_BYTES = 12 * 1024 * 1024
STOP_AFTER = 20  # of about 40 packs: half the data


def _env(repo: Path) -> dict[str, str]:
    return {**os.environ, "AIOS_DATA_REPO": str(repo), "AIOS_DATA_PASSPHRASE": PASSPHRASE}


def _aios(repo: Path, *args: str | Path) -> str:
    """Runs `aios ARGS` to the end; returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", _AIOS, "0", *map(str, args)],
        env=_env(repo),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _aios_killed(repo: Path, *args: str | Path) -> None:
    """Runs `aios ARGS` and kills it with SIGKILL once it has stored `STOP_AFTER` packs."""
    child = subprocess.Popen(
        [sys.executable, "-c", _AIOS, str(STOP_AFTER), *map(str, args)],
        env=_env(repo),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline()
        assert line == f"stored {STOP_AFTER} packs\n", f"it ended first: {line!r}"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()


def _pack_bytes(repo: Path) -> int:
    """Bytes of the complete packs in a local repository."""
    return sum(
        p.stat().st_size
        for p in (repo / "data").rglob("*")
        if p.is_file() and ".tmp-" not in p.name
    )


def _source(root: Path, size: int = DATA_BYTES, files: int = 8) -> Path:
    root.mkdir()
    for i in range(files):
        (root / f"shard-{i:02}.bin").write_bytes(random_bytes(100 + i, size // files))
    return root


@pytest.mark.slow
def test_a_killed_data_add_is_resumed_by_the_next(tmp_path: Path) -> None:
    """`aios data add` killed halfway: the rerun stores only what no index file named
    (not everything again), and the version it saves verifies and restores."""
    repo = tmp_path / "repo"
    new_repo(repo).close()
    src = _source(tmp_path / "src")

    _aios_killed(repo, "data", "add", "shards", src)
    killed_run = _pack_bytes(repo)
    assert killed_run >= 0.4 * DATA_BYTES

    _aios(repo, "data", "add", "shards", src)
    rerun = _pack_bytes(repo) - killed_run
    assert rerun <= 0.6 * DATA_BYTES, f"the rerun stored {rerun / DATA_BYTES:.0%} again"

    assert "no errors found" in _aios(repo, "data", "check", "--read-data")
    _aios(repo, "data", "get", "shards@1", tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []


@pytest.mark.slow
def test_a_killed_backup_create_is_resumed_by_the_next(tmp_path: Path) -> None:
    """`aios backup create` killed halfway: the rerun copies only what no index file of
    the destination named, and the backup verifies every byte."""
    repo, backup = tmp_path / "repo", tmp_path / "backup"
    source = new_repo(repo)
    DataStore(source).add("shards", _source(tmp_path / "src"))
    source.close()

    _aios_killed(repo, "backup", "create", "--to", backup)
    killed_run = _pack_bytes(backup)
    assert killed_run >= 0.4 * DATA_BYTES

    assert "copied 1 snapshots" in _aios(repo, "backup", "create", "--to", backup)
    rerun = _pack_bytes(backup) - killed_run
    assert rerun <= 0.6 * DATA_BYTES, f"the rerun copied {rerun / DATA_BYTES:.0%} again"
    verified = _aios(repo, "backup", "verify", "--read-data", "--repo", backup)
    assert verified.startswith("no errors found (every byte read)")


def _temporary(repo: Path, name: str, age: float) -> Path:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a pack")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_gc_removes_stale_temporaries_and_keeps_fresh_ones(tmp_path: Path) -> None:
    """Temporary files no write touched for `TEMPORARY_GRACE` (a killed writer's) go;
    one written just now (a put in progress) stays."""
    repo = new_repo(tmp_path / "repo")
    stored = repo.store_tree(_source(tmp_path / "src", 256 * 1024))
    repo.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    old = 2 * TEMPORARY_GRACE
    stale = [
        _temporary(tmp_path / "repo", "data/ab/ab12.tmp-0a1b2c3d4e5f", old),
        _temporary(tmp_path / "repo", "index/cd34.tmp-0a1b2c3d4e5f", old),
        _temporary(tmp_path / "repo", "config.tmp-0a1b2c3d4e5f", old),
    ]
    fresh = _temporary(tmp_path / "repo", "data/ef/ef56.tmp-0a1b2c3d4e5f", 1)

    result = repo.gc()

    assert result.removed_temporaries == len(stale)
    assert [p for p in stale if p.exists()] == []
    assert fresh.exists()
    assert reopen(tmp_path / "repo").check(read_data=True).ok


def test_aios_data_gc_says_it_removed_a_killed_writes_temporaries(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    new_repo(repo).close()
    stale = _temporary(repo, "data/ab/ab12.tmp-0a1b2c3d4e5f", 2 * TEMPORARY_GRACE)

    result = CliRunner(env=_env(repo)).invoke(app, ["data", "gc"])

    assert result.exit_code == 0, result.output
    assert "and 1 temporary files of killed writes" in result.stdout
    assert not stale.exists()


class _VanishingIndex(LocalBackend):
    """A backend on which a `gc` by another process merges the index files just after
    they are listed and before the first of them is read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.merged = False

    def get(self, path: str) -> bytes:
        if path.startswith("index/") and not self.merged:
            self.merged = True
            Repository.open(LocalBackend(self.root), PASSPHRASE).gc()
        return super().get(path)


def test_opening_survives_index_files_replaced_while_they_are_read(tmp_path: Path) -> None:
    """An index file deleted by a concurrent gc between the listing and the read: the
    folder is listed again, and the index found names every blob."""
    repo = new_repo(tmp_path / "repo")
    for name in ("one", "two"):
        stored = repo.store_tree(_source(tmp_path / name, 512 * 1024))
        repo.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    before = set(repo.index.blobs)

    opened = Repository.open(_VanishingIndex(tmp_path / "repo"), PASSPHRASE)

    assert opened.backend.merged  # type: ignore[attr-defined]
    assert set(opened.index.blobs) == before
    assert opened.check(read_data=True).ok


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fill_pack(packer: Packer, seed: int) -> None:
    """Adds one blob that fills a pack; returns once the pack is stored."""
    blob = random_bytes(seed, packer.pack_size)
    blob_id = packer.sealer.blob_id(blob)
    packer.add("data", blob_id, packer.sealer.seal(blob), len(blob))
    packer.write_open_packs()


def _indexed_packs(repo: Repository) -> list[int]:
    """How many packs each index file names."""
    return [
        len(json.loads(repo.sealer.open(repo.backend.get(path)))["packs"])
        for path in repo.backend.list("index")
    ]


def test_a_stored_pack_waits_at_most_a_minute_for_its_index(tmp_path: Path) -> None:
    """A pack no index file names, stored `INDEX_SECONDS` before the next one: that next
    one's store writes an index file naming both."""
    repo = new_repo(tmp_path / "repo")
    clock = _Clock()
    packer = Packer(repo.backend, repo.sealer, Index(), lambda: None, clock=clock)
    packer.pack_size = 64 * 1024

    _fill_pack(packer, 1)
    clock.now += 30
    _fill_pack(packer, 2)
    assert _indexed_packs(repo) == []
    clock.now += 31
    _fill_pack(packer, 3)
    assert _indexed_packs(repo) == [3]


def test_an_index_file_follows_every_index_bytes_of_packs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mid-run, an index file is written as soon as the packs no index names reach
    `INDEX_BYTES`, and names them."""
    monkeypatch.setattr("aios.data.packer.INDEX_BYTES", 3 * 64 * 1024)
    repo = new_repo(tmp_path / "repo")
    packer = Packer(repo.backend, repo.sealer, Index(), lambda: None, clock=_Clock())
    packer.pack_size = 64 * 1024

    for seed in range(7):
        _fill_pack(packer, seed)
    assert sorted(_indexed_packs(repo)) == [3, 3]


def test_gc_leaves_one_index_file_however_many_its_repacking_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repacking writes index files mid-run like any writer; the index gc writes last
    names their packs too, and they are removed with the old ones."""
    monkeypatch.setattr("aios.data.packer.INDEX_BYTES", 1)
    repo = new_repo(tmp_path / "repo")
    src = _source(tmp_path / "src", 40 * 20 * 1024, files=40)
    first = repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})
    for odd in sorted(src.iterdir())[1::2]:
        odd.unlink()  # every pack now holds live chunks and dead ones
    repo.save_snapshot(repo.store_tree(src).tree_id, paths=[], tags={}, meta={})
    repo.forget([first.id])

    assert repo.gc().repacked_packs > 1

    assert len(repo.backend.list("index")) == 1
    assert reopen(tmp_path / "repo").check(read_data=True).ok
