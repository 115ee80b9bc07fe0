"""Where ``aios data`` gets the passphrase, and what it says when that goes wrong: one
line on stderr and exit code 2, with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from tests.cli.cli_harness import one_error_line
from tests.data.datasets.test_data_cli import Aios, files_under

MAIN = "from aios.cli.main import app; app()"


def aios_process(
    tmp_path: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``aios ARGS`` as a real process with ``stdin`` and no controlling terminal (a new
    session), so that it reads stdin as a script's pipe gives it, not a terminal."""
    base = {k: v for k, v in os.environ.items() if k != "AIOS_DATA_PASSPHRASE"}
    result = subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        input=stdin,
        capture_output=True,
        env={**base, "AIOS_DATA_REPO": str(tmp_path / "repo"), **(env or {})},
        start_new_session=True,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aios: error: "), lines[0]
    return lines[0].removeprefix("aios: error: ")


@pytest.mark.parametrize("command", [("data", "ls"), ("data", "init")])
def test_an_empty_stdin_without_the_variable_is_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """No terminal, no variable, nothing piped: not getpass's warnings and 'Aborted!'."""
    if command == ("data", "ls"):
        assert aios_process(tmp_path, "data", "init", stdin=b"pw\n").returncode == 0
    before = files_under(tmp_path)

    result = aios_process(tmp_path, *command)

    assert result.returncode == 2
    assert "no passphrase: stdin ended" in error_line(result)
    assert files_under(tmp_path) == before


def test_a_piped_passphrase_creates_and_opens_the_repository(tmp_path: Path) -> None:
    created = aios_process(tmp_path, "data", "init", stdin=b"secret words\n")
    listed = aios_process(tmp_path, "data", "ls", stdin=b"secret words\n")
    wrong = aios_process(tmp_path, "data", "ls", stdin=b"other words\n")

    assert created.returncode == 0, created.stderr
    assert created.stderr == ""
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""
    assert wrong.returncode == 2
    assert "wrong passphrase" in error_line(wrong)


def test_a_piped_passphrase_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    result = aios_process(tmp_path, "data", "init", stdin=b"\xff\xfe\n")

    assert result.returncode == 2
    assert error_line(result) == "the passphrase on stdin is not valid UTF-8 text"
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("command", [("data", "ls"), ("data", "init")])
def test_a_variable_that_is_not_utf8_is_one_line_naming_it(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Bytes ``\\xff\\xfe`` in the environment reach Python as lone surrogates."""
    if command == ("data", "ls"):
        Aios(tmp_path).ok("data", "init")
    before = files_under(tmp_path)

    result = Aios(tmp_path, passphrase="\udcff\udcfe")(*command)

    assert result.exit_code == 2
    assert one_error_line(result) == (
        "AIOS_DATA_PASSPHRASE: the passphrase is not valid UTF-8 text"
    )
    assert files_under(tmp_path) == before


def test_the_passphrase_typed_decomposed_opens_a_repository_made_composed(
    tmp_path: Path, tree: Path
) -> None:
    composed = unicodedata.normalize("NFC", "pâté à la crème")
    Aios(tmp_path, passphrase=composed).ok("data", "init")

    added = Aios(tmp_path, passphrase=unicodedata.normalize("NFD", composed))(
        "data", "add", "d", tree
    )

    assert added.exit_code == 0, added.stderr
    assert added.stdout.startswith("d@1:")
