"""Model artifacts the packaging tests package: a scikit-learn pipeline trained on the
bundled iris data, its ONNX conversion, and a Python-class model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from aios.packaging import ModelArtifact


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    features, labels = load_iris(return_X_y=True)
    return features.astype(np.float32), labels


@pytest.fixture(scope="session")
def iris_pipeline(iris: tuple[np.ndarray, np.ndarray]) -> Pipeline:
    features, labels = iris
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)


@pytest.fixture(scope="session")
def sklearn_file(tmp_path_factory: pytest.TempPathFactory, iris_pipeline: Pipeline) -> Path:
    path = tmp_path_factory.mktemp("sklearn") / "iris.joblib"
    joblib.dump(iris_pipeline, path)
    return path


@pytest.fixture(scope="session")
def onnx_file(tmp_path_factory: pytest.TempPathFactory, iris_pipeline: Pipeline) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "iris.onnx"
    graph = to_onnx(
        iris_pipeline,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={"zipmap": False},
    )
    path.write_bytes(graph.SerializeToString())
    return path


@pytest.fixture(scope="session")
def python_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("python") / "doubler"
    directory.mkdir()
    (directory / "model.py").write_text(
        textwrap.dedent(
            """
            class Model:
                signature = {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
                    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
                }

                def load(self, path):
                    pass

                def predict(self, inputs):
                    return {"y": inputs["x"] * 2}
            """
        )
    )
    return directory


@pytest.fixture
def sklearn_model(sklearn_file: Path) -> ModelArtifact:
    return ModelArtifact("iris", 3, "sklearn", sklearn_file)


@pytest.fixture
def onnx_model(onnx_file: Path) -> ModelArtifact:
    return ModelArtifact("iris-onnx", 1, "onnx", onnx_file)


@pytest.fixture
def python_model(python_dir: Path) -> ModelArtifact:
    return ModelArtifact("doubler", 2, "python", python_dir)
