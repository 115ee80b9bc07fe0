"""Runtimes: one module per model format, each a loader registered in :data:`LOADERS`.

``load_runtime("onnx", path)`` gives a :class:`Runtime` (a signature and ``predict``);
a new format is a function ``(path, RuntimeOptions) -> Runtime`` added to ``LOADERS``.
The frameworks themselves (onnxruntime, joblib, torch) are imported when a model of
their format is loaded, not when this package is.
"""

from aios.serving.runtimes.base import (
    LOADERS,
    Loader,
    ModelFormat,
    Runtime,
    RuntimeOptions,
    Signature,
    TensorSpec,
    load_runtime,
)
from aios.serving.runtimes.onnx import OnnxRuntime, load_onnx
from aios.serving.runtimes.python import PythonRuntime, load_python
from aios.serving.runtimes.sklearn import SklearnRuntime, load_sklearn
from aios.serving.runtimes.torchscript import TorchScriptRuntime, load_torchscript

__all__ = [
    "LOADERS",
    "Loader",
    "ModelFormat",
    "OnnxRuntime",
    "PythonRuntime",
    "Runtime",
    "RuntimeOptions",
    "Signature",
    "SklearnRuntime",
    "TensorSpec",
    "TorchScriptRuntime",
    "load_runtime",
]

LOADERS.update(
    {
        "onnx": load_onnx,
        "sklearn": load_sklearn,
        "torchscript": load_torchscript,
        "python": load_python,
    }
)
