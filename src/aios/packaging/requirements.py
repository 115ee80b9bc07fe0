"""The pinned requirements of a container that serves one model format.

A container must run the code that was tested here, so every package is pinned to the
version installed in this environment (read with :mod:`importlib.metadata`), and so is
every package those need in turn: the closure is pinned, not only the top level, so a
release on PyPI tomorrow cannot change what the image holds. Environment markers are
evaluated for this interpreter, which matches the image's ``python:3.11-slim`` on Linux.
"""

from __future__ import annotations

import importlib.metadata
from collections import deque

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from aios.errors import InvalidInput

__all__ = ["FORMAT_PACKAGES", "SERVER_DISTRIBUTION", "pinned_requirements"]

SERVER_DISTRIBUTION = "aios"
"""The distribution whose base dependencies (no extras) the server needs for any format."""

FORMAT_PACKAGES: dict[str, tuple[str, ...]] = {
    "onnx": (),  # onnxruntime is a base dependency of aios
    "sklearn": ("scikit-learn",),
    "torchscript": ("torch",),
    "python": (),
}
"""What a runtime needs beyond the server, by model format (only what serves, no
converters: skl2onnx stays out of an image that serves a pickled estimator)."""


def pinned_requirements(fmt: str) -> list[str]:
    """Returns ``name==version`` lines, sorted, for everything the server needs to serve
    a model of format ``fmt``: the base dependencies of aios, the format's runtime
    packages, and all that those depend on, at the versions installed here.

    Raises InvalidInput for an unknown format, or when a package the format needs is not
    installed here (a version that was never tested cannot be pinned).
    """
    if fmt not in FORMAT_PACKAGES:
        known = ", ".join(sorted(FORMAT_PACKAGES))
        raise InvalidInput(f"unknown model format {fmt!r} (known: {known})")
    roots = [
        requirement
        for requirement in _requirements_of(SERVER_DISTRIBUTION, frozenset())
        if requirement is not None
    ]
    roots += [Requirement(package) for package in FORMAT_PACKAGES[fmt]]
    versions = _closure(roots, fmt)
    return [f"{name}=={version}" for name, version in sorted(versions.items())]


def _closure(roots: list[Requirement], fmt: str) -> dict[NormalizedName, str]:
    """The installed version of every distribution reachable from ``roots``."""
    pinned: dict[NormalizedName, str] = {}
    seen_extras: dict[NormalizedName, frozenset[str]] = {}
    todo = deque(roots)
    while todo:
        requirement = todo.popleft()
        name = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras) | seen_extras.get(name, frozenset())
        if name in pinned and extras == seen_extras.get(name):
            continue
        try:
            pinned[name] = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise InvalidInput(
                f"{requirement.name} is needed to serve format {fmt!r} but is not installed here"
            ) from None
        seen_extras[name] = extras
        todo.extend(
            child for child in _requirements_of(requirement.name, extras) if child is not None
        )
    return pinned


def _requirements_of(distribution: str, extras: frozenset[str]) -> list[Requirement | None]:
    """The requirements of an installed distribution that apply here with ``extras``;
    None stands for one whose marker does not hold (another platform, an extra not
    asked for). A marker is evaluated in this interpreter's environment."""
    result: list[Requirement | None] = []
    for line in importlib.metadata.requires(distribution) or []:
        requirement = Requirement(line)
        marker = requirement.marker
        applies = marker is None or any(
            marker.evaluate({"extra": extra}) for extra in (extras or {""})
        )
        result.append(requirement if applies else None)
    return result
