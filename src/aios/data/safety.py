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

__all__ = ["check_source", "directory_or_missing", "empty_destination", "member_path"]


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
    anything under it is a symlink resolving outside it or in a loop, or a file that is neither
    regular, a directory nor a symlink (a FIFO would block the reader, a device is no
    data). Relative symlinks that stay inside the tree are kept as symlinks.
    """
    if source.is_symlink():
        raise InvalidInput(f"{source}: is a symlink; add the directory or file it points to")
    if not source.exists():
        raise InvalidInput(f"{source}: no such file or directory")
    try:
        root = source.resolve(strict=True)
    except OSError as exc:  # a parent directory unreadable, or gone since the check
        raise InvalidInput(f"{source}: cannot be read ({exc.strerror})") from None
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
    try:
        mode = entry.lstat().st_mode
        target = os.readlink(entry) if stat.S_ISLNK(mode) else ""
    except FileNotFoundError:  # removed since it was listed: the store walk says so
        return
    if stat.S_ISLNK(mode):
        try:
            resolved = (entry.parent / target).resolve()
        except RuntimeError:  # Python < 3.13 raises it for a loop; later ones resolve less
            shown = entry.relative_to(root)
            raise InvalidInput(f"{shown}: symlink to {target!r} is a symlink loop") from None
        if Path(target).is_absolute() or not resolved.is_relative_to(root):
            shown = entry.relative_to(root)
            raise InvalidInput(f"{shown}: symlink to {target!r} points outside {root}")
    elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        shown = entry.relative_to(root)
        raise InvalidInput(f"{shown}: not a regular file, directory or symlink")


def directory_or_missing(path: Path) -> Path:
    """Returns ``path`` once it is known to be a directory, or missing with a directory
    as its nearest existing ancestor, so that it can be made.

    Raises InvalidInput naming the file at fault when ``path`` or one of its ancestors is
    something else (``FILE/sub`` names FILE): a file never becomes a directory.
    """
    if path.exists():
        if not path.is_dir():
            raise InvalidInput(f"{path}: exists and is not a directory")
        return path
    if path.is_symlink():
        raise InvalidInput(f"{path}: is a dangling symlink")
    for ancestor in path.parents:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise InvalidInput(f"{path}: {ancestor} is not a directory")
            break
    return path


def empty_destination(dest: Path) -> Path:
    """Returns ``dest`` once it is known to be a missing or empty directory, and a
    missing one known to be creatable.

    Raises InvalidInput when it is a file or a directory with anything in it (a restore
    never mixes its files with others or overwrites one), when it lies under a file, or
    when it cannot be made (``/proc/x``, a read-only filesystem). A missing ``dest`` is
    made to find out, then removed again: nothing is left behind if what follows fails.
    """
    directory_or_missing(dest)
    if dest.exists():
        if any(dest.iterdir()):
            raise InvalidInput(f"{dest}: is not empty; restore into a new or empty directory")
        return dest
    missing = [dest, *(a for a in dest.parents if not a.exists())]
    try:
        dest.mkdir(parents=True)
    except OSError as exc:
        raise InvalidInput(f"{dest}: cannot be created ({exc.strerror})") from None
    for made in missing:  # innermost first
        made.rmdir()
    return dest
