"""The control plane: the reconcile loop between the database, the scheduler and the
executor, the REST API, auth and metrics.

The names are imported on first use: the SDK and the CLI load ``aios.control.specs``
alone and must not pay for the server (FastAPI, SQLAlchemy, the scheduler).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aios.control.auth import Principal
    from aios.control.server import DEFAULT_PORT, ControlPlane, Settings, default_home

__all__ = ["DEFAULT_PORT", "ControlPlane", "Principal", "Settings", "default_home"]


def __getattr__(name: str) -> Any:
    if name == "Principal":
        from aios.control import auth

        return auth.Principal
    if name in __all__:
        from aios.control import server

        return getattr(server, name)
    raise AttributeError(f"module 'aios.control' has no attribute {name!r}")
