"""``aios data add`` and ``aios backup create`` when a file changes while it is read:
one warning line per file on stderr, exit code 3, the version kept and marked in
``data versions`` and ``backup list``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.datasets.test_data_cli import Aios
from tests.data.interference import append, interfere

INCOMPLETE = 3


@pytest.fixture
def aios(tmp_path: Path) -> Aios:
    cli = Aios(tmp_path, passphrase=None)
    cli.ok("data", "init", "--unencrypted")
    return cli


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "train.log").write_text("step 1\n")
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("beta\n")
    return root


def _complete_column(table: str, first: str) -> str:
    """The COMPLETE cell of the row whose first cell is ``first``."""
    header, *rows = table.splitlines()
    start = header.index("COMPLETE")
    row = next(r for r in rows if r.split()[0] == first)
    return row[start:].split("  ")[0].strip()


def test_add_names_a_file_that_changed_while_read_and_exits_3(
    aios: Aios, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version is stored; stderr names the file by the path given, once; the exit
    code is 3; ``data versions`` marks the version as not complete."""
    log = source / "logs" / "train.log"
    with interfere(monkeypatch, log, lambda: append(log, b"step 2\n")):
        result = aios("data", "add", "ds", source)
    assert result.exit_code == INCOMPLETE, result.stderr
    assert result.stderr.splitlines() == [
        f"aios: warning: {log} changed while it was read; stored as read"
    ]
    assert result.stdout.startswith("ds@1: 3 files")
    assert "not read whole" in result.stdout
    assert _complete_column(aios.ok("data", "versions", "ds"), "1") == "no: 1 changed"


def test_add_of_files_that_hold_still_warns_of_nothing(aios: Aios, source: Path) -> None:
    result = aios("data", "add", "ds", source)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert _complete_column(aios.ok("data", "versions", "ds"), "1") == "yes"


def test_add_names_a_vanished_file_and_exits_3(
    aios: Aios, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with interfere(monkeypatch, source / "a.txt", (source / "b.txt").unlink):
        result = aios("data", "add", "ds", source)
    assert result.exit_code == INCOMPLETE, result.stderr
    assert result.stderr.splitlines() == [
        f"aios: warning: {source / 'b.txt'} vanished before it was read; not stored"
    ]
    assert _complete_column(aios.ok("data", "versions", "ds"), "1") == "no: 1 vanished"


def test_add_of_a_single_file_names_it_by_the_path_given(
    aios: Aios, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = source / "logs" / "train.log"
    with interfere(monkeypatch, log, lambda: append(log, b"more\n")):
        result = aios("data", "add", "ds", log)
    assert result.exit_code == INCOMPLETE
    assert result.stderr.splitlines() == [
        f"aios: warning: {log} changed while it was read; stored as read"
    ]


def test_backup_create_names_the_copied_versions_not_read_whole(
    aios: Aios, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup that copies a version not read whole says so per file and exits 3;
    ``backup list`` marks it; the next backup, which copies nothing, exits 0."""
    log = source / "logs" / "train.log"
    aios.ok("data", "add", "ds", source)
    with interfere(monkeypatch, log, lambda: append(log, b"step 2\n")):
        assert aios("data", "add", "ds", source).exit_code == INCOMPLETE
    dest = tmp_path / "backup"
    result = aios("backup", "create", "--to", dest)
    assert result.exit_code == INCOMPLETE, result.stderr
    assert result.stderr.splitlines() == [
        "aios: warning: ds@2: logs/train.log changed while it was read; stored as read"
    ]
    listing = aios.ok("backup", "list", "--from", dest)
    ids = [line.split()[0] for line in listing.splitlines()[1:] if line.strip()]
    assert [_complete_column(listing, i) for i in ids] == ["yes", "no: 1 changed"]
    again = aios("backup", "create", "--to", dest)
    assert again.exit_code == 0, again.stderr


@pytest.mark.parametrize("command", [("data", "add"), ("backup", "create")])
def test_help_documents_exit_code_3(aios: Aios, command: tuple[str, str]) -> None:
    text = " ".join(aios.ok(*command, "--help").split())
    assert "exits 3" in text
