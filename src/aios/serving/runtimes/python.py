"""Models written as a Python class: the escape hatch for anything the other formats
cannot express (pre- and post-processing, several frameworks, rules).

The artifact is a ``.py`` file, or a directory holding ``model.py`` next to whatever
files the model needs. The module defines a class named ``Model`` (or exactly one class
with ``load`` and ``predict``)::

    class Model:
        signature = {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        }

        def load(self, path: str) -> None:  # the directory the artifact lives in
            self.weights = numpy.load(os.path.join(path, "weights.npy"))

        def predict(self, inputs: dict[str, numpy.ndarray]) -> dict[str, numpy.ndarray]:
            return {"y": inputs["x"] @ self.weights}

``signature`` is a :class:`~aios.serving.runtimes.Signature` or its JSON form, as a
class attribute or a method (called after ``load``, for a signature that depends on
what was loaded), so a model file need not import aios. The server calls ``predict``
from one worker thread at a time per model version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from aios.errors import InvalidInput
from aios.serving.runtimes.base import RuntimeOptions, Signature

__all__ = ["ENTRY", "PythonRuntime", "load_python"]

ENTRY = "model.py"
"""The module a model directory must hold."""


class PythonRuntime:
    """An instance of the user's class, loaded, with its signature read."""

    def __init__(self, model: Any, signature: Signature) -> None:
        self.model = model
        self.signature = signature
        self._outputs = tuple(spec.name for spec in signature.outputs)

    def predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        results = self.model.predict(inputs)
        if not isinstance(results, Mapping):
            raise TypeError(
                f"{type(self.model).__name__}.predict returned {type(results).__name__}, "
                "not a dict of arrays"
            )
        missing = [name for name in self._outputs if name not in results]
        if missing:
            raise KeyError(f"{type(self.model).__name__}.predict gave no {missing[0]!r}")
        return {name: np.asarray(results[name]) for name in self._outputs}


def load_python(path: Path, options: RuntimeOptions) -> PythonRuntime:
    """A :class:`PythonRuntime` for a ``.py`` file or a directory holding ``model.py``."""
    del options  # a Python model manages its own threads and devices
    source = path / ENTRY if path.is_dir() else path
    if source.suffix != ".py" or not source.is_file():
        raise InvalidInput(f"expected a .py file or a directory with {ENTRY}")
    module = _import(source)
    model_class = _model_class(module)
    model = model_class()
    model.load(str(source.parent))
    declared = getattr(model, "signature", None)
    if callable(declared):
        declared = declared()
    if declared is None:
        raise InvalidInput(f"{model_class.__name__} has no signature")
    signature = declared if isinstance(declared, Signature) else Signature.from_json(declared)
    return PythonRuntime(model, signature)


def _import(source: Path) -> ModuleType:
    """Runs ``source`` as a module of its own, under a name no other model shares."""
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    name = f"aios_model_{digest}"
    spec = importlib.util.spec_from_file_location(name, source)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{source} is not importable")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as import does: dataclasses and pickle look it up.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _model_class(module: ModuleType) -> type[Any]:
    named = getattr(module, "Model", None)
    if inspect.isclass(named):
        return named
    candidates = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and value.__module__ == module.__name__
        and callable(getattr(value, "load", None))
        and callable(getattr(value, "predict", None))
    ]
    if len(candidates) != 1:
        found = ", ".join(c.__name__ for c in candidates) or "none"
        raise InvalidInput(
            f"expected a class named Model, or exactly one class with load and predict "
            f"(found: {found})"
        )
    return candidates[0]
