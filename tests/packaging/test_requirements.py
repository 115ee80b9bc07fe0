"""The container's requirements: what the server needs for the format, pinned to the
versions installed here, and nothing that only tests or converts."""

from __future__ import annotations

import importlib.metadata

import pytest

from aios.errors import InvalidInput
from aios.packaging import pinned_requirements

TOOLS = {"pytest", "mypy", "ruff", "hypothesis", "kubernetes-validate", "skl2onnx", "ray"}


@pytest.mark.parametrize("fmt", ["onnx", "sklearn", "python"])
def test_every_line_pins_the_installed_version(fmt: str) -> None:
    lines = pinned_requirements(fmt)
    names = [line.split("==")[0] for line in lines]
    assert names == sorted(set(names))
    for line in lines:
        name, version = line.split("==")
        assert importlib.metadata.version(name) == version


@pytest.mark.parametrize("fmt", ["onnx", "sklearn", "python"])
def test_server_needs_are_in_and_test_tools_are_out(fmt: str) -> None:
    names = {line.split("==")[0] for line in pinned_requirements(fmt)}
    assert {"fastapi", "uvicorn", "numpy", "onnxruntime", "typer", "pydantic"} <= names
    assert not names & TOOLS


def test_dependencies_of_dependencies_are_pinned_too() -> None:
    """The closure is pinned: starlette comes with fastapi, scipy with scikit-learn."""
    names = {line.split("==")[0] for line in pinned_requirements("sklearn")}
    assert {"starlette", "scipy", "joblib", "threadpoolctl"} <= names


def test_scikit_learn_only_for_sklearn_models() -> None:
    assert any(line.startswith("scikit-learn==") for line in pinned_requirements("sklearn"))
    assert not any(line.startswith("scikit-learn==") for line in pinned_requirements("onnx"))


def test_a_format_whose_runtime_is_not_installed_is_refused() -> None:
    """torch is not installed here: its version cannot be pinned, so no context is made."""
    try:
        importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        with pytest.raises(InvalidInput, match="torch is needed to serve format 'torchscript'"):
            pinned_requirements("torchscript")
    else:
        assert any(line.startswith("torch==") for line in pinned_requirements("torchscript"))


def test_unknown_format_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown model format 'keras'"):
        pinned_requirements("keras")
