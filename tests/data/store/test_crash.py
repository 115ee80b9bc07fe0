"""Crash safety: a writer killed with SIGKILL mid-store leaves a readable repository."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aios.cli.main import app
from aios.data import Repository, copy_to
from aios.data.check import stored_pack_ids
from aios.data.datasets import DataStore
from tests.data.store.conftest import (
    PASSPHRASE,
    make_tree,
    new_repo,
    random_bytes,
    reopen,
    same_tree,
)

_WRITER = """
import sys
import threading
from pathlib import Path
from aios.data import LocalBackend, Repository
repo = Repository.open(LocalBackend(sys.argv[1]), sys.argv[3])
repo.pack_size = 64 * 1024
# The main thread (small files) and the store thread both report: one at a time, or
# their reads of stdin race in its buffer and one waits for a line the other took.
gate = threading.Lock()

def report(done: int, total: int) -> None:
    with gate:
        print(done, total, flush=True)
        sys.stdin.readline()  # the test decides when this writer goes on (or dies)

stored = repo.store_tree(Path(sys.argv[2]), progress=report, workers=1)
repo.save_snapshot(stored.tree_id, paths=[sys.argv[2]], tags={}, meta={})
print("done", flush=True)
"""


def _packs(repo_path: Path) -> set[Path]:
    return {p for p in (repo_path / "data").rglob("*") if p.is_file() and ".tmp-" not in p.name}


def _kill_writer_midway(repo_path: Path, src: Path) -> None:
    """Runs a writer and kills it with SIGKILL once a third of the bytes are stored and
    its uploader threads have written at least one pack."""
    before = _packs(repo_path)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(repo_path), str(src), "correct horse battery staple"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        while True:
            line = writer.stdout.readline()
            assert line and line != "done\n", "the writer finished before it could be killed"
            done, total = map(int, line.split())
            if done * 3 >= total and _packs(repo_path) - before:
                break
            writer.stdin.write("\n")
            writer.stdin.flush()
    finally:
        _kill(writer)


def _kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    child.stdout.close()


def _big_source(tmp_path: Path) -> Path:
    src = make_tree(tmp_path / "src")
    for i in range(12):
        (src / f"part{i}.bin").write_bytes(random_bytes(300 + i, 150_000))
    return src


def test_a_writer_killed_mid_store_leaves_a_readable_repository(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    src = _big_source(tmp_path)
    first = repo.store_tree(src / "sub")
    kept = repo.save_snapshot(first.tree_id, paths=[], tags={}, meta={})

    _kill_writer_midway(tmp_path / "repo", src)
    assert list((tmp_path / "repo" / "locks").iterdir())  # and left its lock behind

    after = reopen(tmp_path / "repo")
    assert after.check(read_data=True).ok
    assert [s.id for s in after.snapshots()] == [kept.id]
    orphans = stored_pack_ids(after) - set(after.index.packs)
    assert orphans  # packs the writer wrote before any index named them: harmless
    stored = after.store_tree(src)
    assert stored.new_bytes < stored.bytes  # what the first snapshot holds is not stored again
    snapshot = after.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    assert after.check(read_data=True).ok
    after.restore(snapshot.tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []
    # The dead writer's lock is stale (its pid is gone), so gc runs and drops its packs.
    assert after.gc().removed_packs >= len(orphans)
    assert not orphans & stored_pack_ids(after)
    assert reopen(tmp_path / "repo").check(read_data=True).ok


def test_lost_index_files_are_rebuilt_from_the_packs(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    src = _big_source(tmp_path)
    stored = repo.store_tree(src)
    snapshot = repo.save_snapshot(stored.tree_id, paths=[], tags={}, meta={})
    for index_file in (tmp_path / "repo" / "index").iterdir():
        index_file.unlink()
    broken = reopen(tmp_path / "repo")
    assert not broken.check().ok
    broken.rebuild_index()
    assert broken.check(read_data=True).ok
    fixed: Repository = reopen(tmp_path / "repo")
    fixed.restore(snapshot.tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []
    assert fixed.store_tree(src).new_bytes == 0


_COPIER = """
import sys
import threading
from aios.data import LocalBackend, Repository, copy_to
from aios.data.backend import LocalBackend as Local

source = Repository.open(LocalBackend(sys.argv[1]), sys.argv[3])
dest = Repository.open(LocalBackend(sys.argv[2]), sys.argv[3])
dest.pack_size = 64 * 1024
put = Local.put

one_at_a_time = threading.Lock()  # two uploader threads store packs

def reporting_put(self: Local, path: str, data: bytes) -> None:
    put(self, path, data)
    if path.startswith("data/"):
        with one_at_a_time:
            print("pack", flush=True)
            sys.stdin.readline()  # the test decides when this copier goes on (or dies)

Local.put = reporting_put  # type: ignore[method-assign]
copy_to(source, dest)
print("done", flush=True)
"""


def test_a_backup_killed_mid_copy_leaves_the_destination_consistent(tmp_path: Path) -> None:
    """The destination stays readable with no half-copied snapshot; the next copy
    completes."""
    source = new_repo(tmp_path / "repo")
    src = _big_source(tmp_path)
    snapshot = source.save_snapshot(source.store_tree(src).tree_id, paths=[], tags={}, meta={})
    dest = new_repo(tmp_path / "backup")
    copier = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _COPIER,
            str(tmp_path / "repo"),
            str(tmp_path / "backup"),
            "correct horse battery staple",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert copier.stdin is not None and copier.stdout is not None
    try:
        for _ in range(5):
            assert copier.stdout.readline() == "pack\n"
            copier.stdin.write("\n")
            copier.stdin.flush()
        assert copier.stdout.readline() == "pack\n"
    finally:
        _kill(copier)

    after = reopen(tmp_path / "backup")
    assert after.snapshots() == []
    assert after.check(read_data=True).ok
    assert copy_to(source, after).snapshots == 1
    assert reopen(tmp_path / "backup").check(read_data=True).ok
    after.restore(snapshot.tree, tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []
    assert dest.id == after.id


_BACKUP_CLI = """
import os
import sys
import threading
from pathlib import Path

import aios.data.packer
from aios.data.backend import LocalBackend

# Small packs, so that a few hundred KiB make many of them.
aios.data.packer.PACK_SIZE = 64 * 1024
DEST = Path(sys.argv[1])
gate = threading.Lock()  # two uploader threads store packs


def event(when: str, path: Path) -> None:
    with gate:
        print(when, path.relative_to(DEST).as_posix(), flush=True)
        sys.stdin.readline()  # the test decides when the copy goes on (or dies)


replace, put = os.replace, LocalBackend.put


def gated_replace(src: str, dst: str) -> None:
    if Path(dst).is_relative_to(DEST):
        event("renaming", Path(dst))  # the temporary file is written and fsynced
    replace(src, dst)


def gated_put(self: LocalBackend, path: str, data: bytes) -> None:
    put(self, path, data)
    if self.root == DEST:
        event("stored", DEST / path)


os.replace = gated_replace
LocalBackend.put = gated_put  # type: ignore[method-assign]

from aios.cli.main import app

app(["backup", "create", "--to", str(DEST)], prog_name="aios")
"""

Event = tuple[str, str]  # ("renaming" or "stored", a path in the destination)

# Where the copy dies: at the first event for which the predicate holds, given those before.
_KILL_POINTS: dict[str, Callable[[str, str, list[Event]], bool]] = {
    "the destination just created": lambda when, path, _: when == "stored" and path == "config",
    "a pack written, not yet renamed": lambda when, path, _: (
        when == "renaming" and path.startswith("data/")
    ),
    "packs stored, no index yet": lambda when, path, seen: (
        when == "stored"
        and path.startswith("data/")
        and sum(p.startswith("data/") for w, p in seen if w == "stored") >= 3
    ),
    "packs and index stored, no snapshot": lambda when, path, _: (
        when == "stored" and path.startswith("index/")
    ),
    "one of the snapshots stored": lambda when, path, _: (
        when == "stored" and path.startswith("snapshots/")
    ),
}


@pytest.mark.parametrize("kill_point", list(_KILL_POINTS))
def test_aios_backup_create_killed_mid_copy_leaves_a_verifiable_destination(
    tmp_path: Path, kill_point: str
) -> None:
    """`aios backup create --to DEST`, a real process, is killed with SIGKILL at each
    step of a copy; DEST still verifies, holds only whole snapshots, and the next
    `aios backup create` completes a copy that verifies with --read-data."""
    source = new_repo(tmp_path / "repo")
    src = _big_source(tmp_path)
    (src / "outside-link").unlink()  # a dataset may not point out of itself
    store = DataStore(source)
    store.add("parts", src)
    (src / "part0.bin").write_bytes(random_bytes(999, 150_000))
    latest = store.add("parts", src)
    source.close()
    dest = tmp_path / "backup"
    env = {
        **os.environ,
        "AIOS_DATA_REPO": str(tmp_path / "repo"),
        "AIOS_DATA_PASSPHRASE": PASSPHRASE,
    }

    def aios(*args: str | Path) -> str:
        """Runs one `aios` command in this process, as the shell would with `env`."""
        result = CliRunner(env=env).invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.stdout

    copier = subprocess.Popen(
        [sys.executable, "-c", _BACKUP_CLI, str(dest)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert copier.stdin is not None and copier.stdout is not None
    seen: list[Event] = []
    try:
        while True:
            line = copier.stdout.readline()
            assert line.startswith(("renaming ", "stored ")), f"copy ended first: {line!r}"
            when, path = line.split()
            if _KILL_POINTS[kill_point](when, path, seen):
                break
            seen.append((when, path))
            copier.stdin.write("\n")
            copier.stdin.flush()
    finally:
        _kill(copier)

    leftovers = [p.relative_to(dest).as_posix() for p in dest.rglob("*") if ".tmp-" in p.name]
    if kill_point == "a pack written, not yet renamed":
        assert leftovers
    # The other uploader thread may have written a pack under its temporary name and be
    # waiting at the gate when the process dies; nothing else is ever left half-written.
    assert all(path.startswith("data/") for path in leftovers), leftovers
    assert "no errors found" in aios("backup", "verify", "--repo", dest)
    expected = 1 if kill_point == "one of the snapshots stored" else 0
    assert len(reopen(dest).snapshots()) == expected  # whole snapshots only
    assert f"copied {2 - expected} snapshots" in aios("backup", "create", "--to", dest)
    verified = aios("backup", "verify", "--read-data", "--repo", dest)
    assert verified.startswith("no errors found (every byte read)")
    aios("backup", "restore", "--from", dest, "--to", tmp_path / "out")
    assert same_tree(src, tmp_path / "out") == []
    assert [s.id for s in reopen(dest).snapshots()][-1] == latest.snapshot
