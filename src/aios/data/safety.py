"""Path checks at the edge of the data store: nothing outside a dataset gets in or out.

A dataset is a tree of regular files, directories and symlinks that stay inside it. A
source tree with a symlink that points out of it (``link -> /etc``, ``link -> ../..``)
or with a device, FIFO or socket is refused before a byte is stored, and a path named
inside a dataset (a label's file, an ``--include``) must be relative, without ``..``.
Every check raises :class:`~aios.errors.InvalidInput` naming the path at fault, so the
CLI prints one line and nothing is written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from aios.errors import InvalidInput

__all__ = ["check_source", "empty_destination", "member_path"]


def member_path(text: str, *, what: str = "path") -> str:
    """Returns ``text`` as a normalised POSIX path relative to a dataset's root.

    Raises InvalidInput for an empty or absolute path, one with a ``..`` component, a
    backslash or a NUL: any of them could name a file outside the dataset.
    """
    if not text or "\x00" in text or "\\" in text:
        raise InvalidInput(f"{what} {text!r}: not a path inside the dataset")
    path = PurePosixPath(text)
    if path.is_absolute():
        raise InvalidInput(f"{what} {text!r}: must be relative to the dataset's root")
    if ".." in path.parts:
        raise InvalidInput(f"{what} {text!r}: '..' would leave the dataset")
    normalised = str(path)
    if normalised in ("", "."):
        raise InvalidInput(f"{what} {text!r}: names the dataset's root, not a file in it")
    return normalised


def check_source(source: Path) -> Path:
    """Returns the absolute path of ``source``, a file or a directory to add, once checked.

    Raises InvalidInput when it does not exist, when it is itself a symlink, or when
    anything under it is a symlink resolving outside it or a file that is neither
    regular, a directory nor a symlink (a FIFO would block the reader, a device is no
    data). Relative symlinks that stay inside the tree are kept as symlinks.
    """
    if source.is_symlink():
        raise InvalidInput(f"{source}: is a symlink; add the directory or file it points to")
    if not source.exists():
        raise InvalidInput(f"{source}: no such file or directory")
    root = source.resolve(strict=True)
    if root.is_file():
        return root
    if not root.is_dir():
        raise InvalidInput(f"{source}: neither a regular file nor a directory")
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        for name in [*dirnames, *filenames]:
            _check_entry(root, here / name)
    return root


def _check_entry(root: Path, entry: Path) -> None:
    mode = entry.lstat().st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(entry)
        resolved = (entry.parent / target).resolve()
        if Path(target).is_absolute() or not resolved.is_relative_to(root):
            shown = entry.relative_to(root)
            raise InvalidInput(f"{shown}: symlink to {target!r} points outside {root}")
    elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        shown = entry.relative_to(root)
        raise InvalidInput(f"{shown}: not a regular file, directory or symlink")


def empty_destination(dest: Path) -> Path:
    """Returns ``dest`` once it is known to be a missing or empty directory.

    Raises InvalidInput when it is a file or a directory with anything in it: a restore
    never mixes its files with others or overwrites one.
    """
    if dest.is_symlink() and not dest.exists():
        raise InvalidInput(f"{dest}: is a dangling symlink")
    if dest.exists():
        if not dest.is_dir():
            raise InvalidInput(f"{dest}: exists and is not a directory")
        if any(dest.iterdir()):
            raise InvalidInput(f"{dest}: is not empty; restore into a new or empty directory")
    return dest
