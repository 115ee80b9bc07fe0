"""The store's public surface, which the datasets layer and the CLI build on."""

from __future__ import annotations

import dataclasses
import inspect

import aios.data
from aios.data import Damaged, Repository, UntrustedConfig, WrongPassphrase, model
from aios.errors import AiosError, InvalidInput

STORE_NAMES = {
    "Backend",
    "CheckResult",
    "ChunkerParams",
    "CopyResult",
    "Damaged",
    "DirNode",
    "FileNode",
    "FsspecBackend",
    "GcResult",
    "IndexRebuild",
    "LocalBackend",
    "Node",
    "RepoStats",
    "Repository",
    "RestoreResult",
    "Snapshot",
    "SymlinkNode",
    "TreeResult",
    "UntrustedConfig",
    "WrongPassphrase",
    "copy_to",
}


def test_the_package_exports_the_store_api() -> None:
    assert set(aios.data.__all__) >= STORE_NAMES
    assert all(hasattr(aios.data, name) for name in STORE_NAMES)


def test_errors_sit_in_the_aios_hierarchy() -> None:
    assert issubclass(WrongPassphrase, InvalidInput)
    assert issubclass(Damaged, AiosError)
    assert issubclass(UntrustedConfig, InvalidInput)  # a CLI refusal: one line, exit 2


def test_result_types_are_frozen_dataclasses() -> None:
    for name in model.__all__:
        value = getattr(model, name)
        if inspect.isclass(value) and dataclasses.is_dataclass(value):
            assert value.__dataclass_params__.frozen, name  # type: ignore[attr-defined]


def test_repository_methods_keep_their_keyword_only_options() -> None:
    store_tree = inspect.signature(Repository.store_tree).parameters
    assert store_tree["progress"].kind is inspect.Parameter.KEYWORD_ONLY
    assert store_tree["workers"].kind is inspect.Parameter.KEYWORD_ONLY
    restore = inspect.signature(Repository.restore).parameters
    assert restore["include"].kind is inspect.Parameter.KEYWORD_ONLY
    init = inspect.signature(Repository.init).parameters
    assert init["encrypted"].default is True
