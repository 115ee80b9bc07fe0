"""Files: writing one so that a reader (or a crash) never sees half of it, and reading
one a job left in its own directory.

A job's directory is the job's: it may leave a symlink under any name (to the control
plane's database, to ``/etc/shadow``), a FIFO that blocks its reader, or swap one for
the other while the control plane looks. What the control plane reads there on a
tenant's behalf (a log, a function's result, a serving replica's address) is opened
with :func:`open_in`: relative to a descriptor of the directory, never through a
symlink, and only when it is a regular file — the checks hold on the descriptor that is
then read, so nothing can be swapped in between.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = ["NotARegularFile", "open_in", "read_in", "write_atomically", "write_in"]

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotARegularFile(OSError):
    """The name is a symlink, a FIFO, a device, a directory: anything but a regular
    file. The message names it."""


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Writes ``data`` to ``path`` through a temporary file beside it, then renames it
    over ``path``; with ``durable``, the bytes are fsynced before the rename, so after a
    crash the file is the old one or the new one, whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with partial.open("wb") as out:
        out.write(data)
        if durable:
            out.flush()
            os.fsync(out.fileno())
    partial.replace(path)
    return path


def open_in(directory: Path, name: str) -> BinaryIO:
    """Opens the regular file ``name`` (one path component) of ``directory`` for
    reading, without following a symlink at either. Raises FileNotFoundError when it is
    absent and :class:`NotARegularFile` when it is anything but a regular file."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{name!r} is not one path component")
    try:
        parent = os.open(directory, _DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotARegularFile(exc.errno, f"{directory} is not a directory") from None
        raise
    try:
        try:
            fd = os.open(name, _FILE, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotARegularFile(exc.errno, f"{name} is a symlink") from None
            raise
    finally:
        os.close(parent)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(errno.EINVAL, f"{name} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_in(directory: Path, name: str, limit: int) -> bytes:
    """The content of :func:`open_in`'s file, refused (:class:`NotARegularFile`) when it
    holds more than ``limit`` bytes."""
    with open_in(directory, name) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise NotARegularFile(errno.EFBIG, f"{name} is larger than {limit} bytes")
    return data


def write_in(directory: Path, name: str, data: bytes) -> None:
    """Writes ``data`` as the regular file ``name`` (one path component) of
    ``directory``, made or truncated, never through a symlink at either: a job may have
    left one under that name in its own directory. Raises :class:`NotARegularFile` when
    the name holds anything but a regular file."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{name!r} is not one path component")
    try:
        parent = os.open(directory, _DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotARegularFile(exc.errno, f"{directory} is not a directory") from None
        raise
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o644, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise NotARegularFile(exc.errno, f"{name} is not a regular file") from None
            raise
    finally:
        os.close(parent)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(errno.EINVAL, f"{name} is not a regular file")
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
