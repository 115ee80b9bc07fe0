"""Real models for the registry's tests, built in code: a scikit-learn classifier on the
bundled iris data, an ONNX linear layer from the onnx helper API, and a Python model
directory."""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

PYTHON_MODEL = textwrap.dedent(
    """
    import os

    import numpy


    class Model:
        signature = {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        }

        def load(self, path):
            self.weights = numpy.load(os.path.join(path, "data", "weights.npy"))

        def predict(self, inputs):
            return {"y": inputs["x"] @ self.weights}
    """
)


def iris() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    features, labels = load_iris(return_X_y=True)
    return np.asarray(features, np.float32), np.asarray(labels)


def iris_classifier() -> Any:
    """A fitted scaler + logistic regression on iris (4 features, 3 classes)."""
    features, labels = iris()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)


def write_sklearn(path: Path, model: Any | None = None) -> Path:
    joblib.dump(iris_classifier() if model is None else model, path)
    return path


def write_onnx(path: Path, features: int = 4, outputs: int = 2, seed: int = 0) -> Path:
    """A linear layer ``y = x @ W + b`` with input ``x`` (FP32, [-1, features]) and
    output ``y`` (FP32, [-1, outputs]); ``seed`` picks the weights."""
    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(
        rng.standard_normal((features, outputs)).astype(np.float32), "W"
    )
    bias = numpy_helper.from_array(rng.standard_normal(outputs).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, outputs])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def write_python_model(directory: Path) -> Path:
    """A directory with ``model.py`` and ``data/weights.npy``: y = x @ [1, 2, 3]."""
    (directory / "data").mkdir(parents=True)
    (directory / "model.py").write_text(PYTHON_MODEL)
    np.save(directory / "data" / "weights.npy", np.array([1.0, 2.0, 3.0], np.float32))
    return directory


def tar_with(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """An archive holding exactly ``members`` (for hostile ones a client would not make)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()
