"""The directory a packaging command writes: all of it or nothing.

Every command builds its output in a staging directory next to the destination and
swaps it in only when everything is written, so a failure (a model that does not
convert, a full disk) never leaves a half-written bundle behind, and ``--force``
replaces an old bundle only with a complete new one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aios.errors import InvalidInput

__all__ = ["check_destination", "staged_directory"]


def check_destination(destination: Path, *, force: bool) -> None:
    """Raises InvalidInput unless ``destination`` can be written: absent, an empty
    directory, or (with ``force``) a directory whose contents may be replaced."""
    if not destination.exists():
        return
    if not destination.is_dir():
        raise InvalidInput(f"{destination} exists and is not a directory")
    if not force and any(destination.iterdir()):
        raise InvalidInput(f"{destination} is not empty (use --force to replace its contents)")


@contextmanager
def staged_directory(destination: Path, *, force: bool) -> Iterator[Path]:
    """Yields an empty directory to write into; when the block ends without an error it
    becomes ``destination`` (the old contents, if any, are removed), and when it raises
    it is removed and ``destination`` is left as it was.

    Raises InvalidInput before yielding when :func:`check_destination` refuses.
    """
    check_destination(destination, force=force)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(staging, 0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    if destination.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        destination.rename(retired / destination.name)
        staging.rename(destination)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(destination)
