"""AIOS: an operating system for AI work.

``aios.Client`` and ``aios.job`` (the SDK) are imported on first use, so that
``import aios`` stays cheap for the simulator and the scheduler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aios.client import Client, job

from aios.version import __version__

__all__ = ["Client", "__version__", "job"]


def __getattr__(name: str) -> Any:
    if name in {"Client", "job"}:
        import aios.client

        return getattr(aios.client, name)
    raise AttributeError(f"module 'aios' has no attribute {name!r}")
