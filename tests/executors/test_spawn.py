"""posix_spawn through the C library, with the interpreter lock released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aios.executors.spawn import posix_spawn


def _run(tmp_path: Path, script: str, **options: object) -> tuple[int, str]:
    out = tmp_path / "out"
    pid = posix_spawn(
        "/bin/sh",
        ["sh", "-c", script],
        {b"PATH": os.environb[b"PATH"], b"GREETING": b"hello"},
        file_actions=[(os.POSIX_SPAWN_OPEN, 1, str(out), os.O_WRONLY | os.O_CREAT, 0o644)],
        **options,  # type: ignore[arg-type]
    )
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.read_text()


def test_the_child_gets_its_arguments_environment_and_files(tmp_path: Path) -> None:
    """argv, the environment and the opened stdout are the child's; its exit status is
    the parent's to reap."""
    code, out = _run(tmp_path, 'echo "$0 $GREETING"; exit 3')
    assert (code, out) == (3, "sh hello\n")


def test_a_duplicated_descriptor_is_inherited(tmp_path: Path) -> None:
    """A dup2 file action gives the child the descriptor under the new number, even
    from a close-on-exec original."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid = posix_spawn(
            "/bin/sh",
            ["sh", "-c", "echo through >&5"],
            {},
            file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 5)],
        )
        os.close(write_end)
        os.waitpid(pid, 0)
        assert os.read(read_end, 100) == b"through\n"
    finally:
        os.close(read_end)


def test_new_session_and_default_signals(tmp_path: Path) -> None:
    """With setsid the child leads its own session; signals in setsigdef are reset to
    their defaults (SIGTERM, ignored here, is not in the child); the mask is empty."""
    _, out = _run(tmp_path, "ps -o sid= -p $$; echo $$", setsid=True)
    sid, pid = out.split()
    assert sid == pid
    status = tmp_path / "status"
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        # grep itself, not a shell (which blocks signals while it forks), reads its mask.
        child = posix_spawn(
            "/bin/grep",
            ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
            {},
            file_actions=[(os.POSIX_SPAWN_OPEN, 1, str(status), os.O_WRONLY | os.O_CREAT, 0o644)],
            setsigdef=[signal.SIGTERM],
            setsigmask=(),
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    os.waitpid(child, 0)
    masks = status.read_text().splitlines()
    mask = {line.split(":")[0]: int(line.split()[1], 16) for line in masks}
    assert not mask["SigIgn"] & (1 << (signal.SIGTERM - 1))
    assert mask["SigBlk"] == 0


def test_a_missing_program_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        posix_spawn(str(tmp_path / "missing"), ["missing"], {})


GIL_CHECK = """
import os, sys, threading, time
from aios.executors.spawn import posix_spawn
spawn = os.posix_spawn if sys.argv[2] == "os" else posix_spawn
fifo = sys.argv[1]
children = f"/proc/self/task/{threading.get_native_id()}/children"
def writer():
    # Runs Python once the child exists: the child's file action opens the FIFO for
    # reading, which blocks its creation until this thread opens it for writing.
    while not open(children).read().strip():
        time.sleep(0.001)
    os.close(os.open(fifo, os.O_WRONLY))
threading.Thread(target=writer).start()
actions = [(os.POSIX_SPAWN_OPEN, 0, fifo, os.O_RDONLY, 0)]
os.waitpid(spawn("/bin/true", ["true"], {}, file_actions=actions), 0)
print("spawned")
"""


def test_other_threads_run_python_while_the_child_is_created(tmp_path: Path) -> None:
    """The interpreter lock is released during the call: a child whose creation waits
    for another thread of the parent is created (with os.posix_spawn it never would)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-c", GIL_CHECK, str(fifo), "aios"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "spawned", done.stderr


def test_descriptors_from_close_from_up_are_closed(tmp_path: Path) -> None:
    """A descriptor this process inherited without close-on-exec (as from the shell
    that started it) does not reach the child; those below ``close_from`` do."""
    inherited = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inherited, True)
    assert inherited >= 4
    try:
        _, out = _run(tmp_path, "ls /proc/$$/fd", close_from=3)
    finally:
        os.close(inherited)
    assert str(inherited) not in out.split()
    assert {"0", "1", "2"} <= set(out.split())
