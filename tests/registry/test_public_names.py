"""The registry's public surface: a change here is a change for every user."""

from __future__ import annotations

import aios.registry


def test_registry_public_names() -> None:
    """aios.registry exports the operations, the router, the views and the reference
    parser, and each name resolves."""
    assert sorted(aios.registry.__all__) == sorted(
        [
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
    )
    for name in aios.registry.__all__:
        assert getattr(aios.registry, name) is not None
