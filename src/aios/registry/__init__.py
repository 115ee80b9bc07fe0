"""The model registry: models, their versions and aliases, signatures read from the
models themselves, lineage, and artifacts in a content-addressed store.

Every name is imported on first use: the CLI parses references with
:mod:`aios.registry.refs` alone, the SDK needs the pydantic views of
:mod:`aios.registry.specs`, and only the control plane brings the database and the web
framework (:class:`RegistryOps`, :func:`model_router`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aios.registry.api import model_router
    from aios.registry.catalog import Caller
    from aios.registry.refs import parse_reference
    from aios.registry.service import InUse, RegistryOps
    from aios.registry.specs import (
        AliasSpec,
        ConversionView,
        ModelVersionView,
        ModelView,
        RegisterSpec,
        SignatureView,
        TensorView,
        VersionUpdate,
    )

__all__ = [
    "AliasSpec",
    "Caller",
    "ConversionView",
    "InUse",
    "ModelVersionView",
    "ModelView",
    "RegisterSpec",
    "RegistryOps",
    "SignatureView",
    "TensorView",
    "VersionUpdate",
    "model_router",
    "parse_reference",
]

_HOMES = {
    "Caller": "catalog",
    "InUse": "service",
    "RegistryOps": "service",
    "model_router": "api",
    "parse_reference": "refs",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'aios.registry' has no attribute {name!r}")
    return getattr(import_module(f"aios.registry.{_HOMES.get(name, 'specs')}"), name)
