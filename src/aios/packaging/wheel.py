"""A wheel of the aios package as it is installed here, for a container to ``pip install``.

Why not ``pip wheel`` of the project? That needs this repository's checkout and a build
backend that can read its ``pyproject.toml`` (setuptools 77 or later, for the license
expression) available offline, and builds whatever the checkout holds. The code that
runs here is the imported :mod:`aios` package and its installed metadata; a wheel is a
zip archive of exactly those (PEP 427), so writing it takes no build step, no network
and no checkout, and the container installs the same files that were tested here,
editable install or not.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from pathlib import Path

__all__ = ["WHEEL_TAG", "write_wheel"]

WHEEL_TAG = "py3-none-any"
"""aios is pure Python: one wheel fits every platform the image may run on."""

_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# The zip entries' timestamp: a fixed one, so the same code gives the same wheel bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_wheel(directory: Path) -> Path:
    """Writes ``aios-<version>-py3-none-any.whl`` into ``directory`` and returns its path.

    The wheel holds every file of the imported aios package (sources and package data,
    no bytecode) and the installed distribution's METADATA and entry points, so ``pip
    install`` gives the ``aios`` console script and declares the same dependencies.
    """
    distribution = importlib.metadata.distribution("aios")
    version = distribution.version
    dist_info = f"aios-{version}.dist-info"
    path = directory / f"aios-{version}-{WHEEL_TAG}.whl"
    files: list[tuple[str, bytes]] = [
        (f"aios/{source.relative_to(_package_root()).as_posix()}", source.read_bytes())
        for source in _package_files()
    ]
    files.append((f"{dist_info}/METADATA", _read(distribution, "METADATA").encode()))
    files.append((f"{dist_info}/WHEEL", _wheel_file().encode()))
    entry_points = distribution.read_text("entry_points.txt")
    if entry_points:
        files.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    files.append((f"{dist_info}/top_level.txt", b"aios\n"))
    record = [f"{name},{_digest(data)},{len(data)}" for name, data in files]
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def _package_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _package_files() -> list[Path]:
    root = _package_root()
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not _SKIPPED_DIRS.intersection(path.relative_to(root).parts)
        and not path.name.endswith(_SKIPPED_SUFFIXES)
    )


def _read(distribution: importlib.metadata.Distribution, name: str) -> str:
    text = distribution.read_text(name)
    if text is None:
        raise RuntimeError(f"the installed aios distribution has no {name}")
    return text


def _wheel_file() -> str:
    return (
        f"Wheel-Version: 1.0\nGenerator: aios.packaging\nRoot-Is-Purelib: true\nTag: {WHEEL_TAG}\n"
    )


def _digest(data: bytes) -> str:
    """RECORD's hash field: urlsafe base64 of the sha256, without padding (PEP 376)."""
    encoded = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={encoded.decode()}"
