"""The two models the serving benchmark serves, built in code, and their request rows.

- ``mlp``: a scikit-learn MLP 64→256→256→10 fitted on the bundled digits, converted
  with skl2onnx (no ZipMap: plain tensors). About 3 µs of onnxruntime per row in a
  batch: HTTP, not the model, sets the pace of a one-row request.
- ``cnn``: a small VGG-style CNN built with the onnx helper API, random but fixed
  weights: 1×28×28 → (conv 3×3×32, relu) ×2 → maxpool 2 → (conv 3×3×64, relu) ×2 →
  maxpool 2 → dense 128 → relu → dense 10 → softmax; 18.7 M multiply-adds per row,
  about 0.5 ms of onnxruntime on one core: per-request compute a real image model has.
  (Half as wide with one conv per stage, 1 M multiply-adds, runs in 35 µs per row and
  is as HTTP-bound as the MLP.)

Both take ``X`` (FP32, first dim free) and give ``probabilities`` (FP32, rows × 10).
Rows are the digits (the CNN's scaled up to 24×24 and padded to 28×28).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INPUT = "X"
OUTPUT = "probabilities"


@dataclass(frozen=True)
class BenchModel:
    """A model to serve: its name, the shape of one row, and how to write its ONNX."""

    name: str
    row_shape: tuple[int, ...]
    build: Callable[[Path], Path]

    def sample(self, rows: int) -> np.ndarray[Any, Any]:
        """``rows`` digit rows in this model's input layout, FP32."""
        from sklearn.datasets import load_digits

        images = (load_digits().images / 16.0).astype(np.float32)
        if self.row_shape == (64,):
            return np.resize(images.reshape(-1, 64), (rows, 64))
        scaled = np.kron(images, np.ones((3, 3), dtype=np.float32))
        padded = np.pad(scaled, ((0, 0), (2, 2), (2, 2)))[:, None, :, :]
        return np.resize(padded, (rows, *self.row_shape))

    @property
    def row_bytes(self) -> int:
        return 4 * int(np.prod(self.row_shape))


def build_mlp(directory: Path) -> Path:
    """The MLP 64→256→256→10 as ONNX."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    features, labels = load_digits(return_X_y=True)
    features = (features / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=30, random_state=0)
        mlp.fit(features, labels)
        model = to_onnx(mlp, features[:1], options={id(mlp): {"zipmap": False}})
    path = directory / "mlp.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def build_cnn(directory: Path) -> Path:
    """The CNN as ONNX (opset 17), He-initialised from a fixed seed."""
    from onnx import TensorProto, checker, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, fan_in: int, *shape: int) -> Any:
        values = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        return numpy_helper.from_array(values, name)

    def bias(name: str, size: int) -> Any:
        return numpy_helper.from_array(np.zeros(size, dtype=np.float32), name)

    conv: dict[str, Any] = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    pool: dict[str, Any] = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        helper.make_node("Conv", [INPUT, "w1", "b1"], ["c1"], **conv),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], **conv),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], **pool),
        helper.make_node("Conv", ["p2", "w3", "b3"], ["c3"], **conv),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("Conv", ["r3", "w4", "b4"], ["c4"], **conv),
        helper.make_node("Relu", ["c4"], ["r4"]),
        helper.make_node("MaxPool", ["r4"], ["p4"], **pool),
        helper.make_node("Flatten", ["p4"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w5", "b5"], ["dense"]),
        helper.make_node("Relu", ["dense"], ["r5"]),
        helper.make_node("Gemm", ["r5", "w6", "b6"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 10])],
        initializer=[
            weight("w1", 9, 32, 1, 3, 3),
            bias("b1", 32),
            weight("w2", 288, 32, 32, 3, 3),
            bias("b2", 32),
            weight("w3", 288, 64, 32, 3, 3),
            bias("b3", 64),
            weight("w4", 576, 64, 64, 3, 3),
            bias("b4", 64),
            weight("w5", 64 * 7 * 7, 64 * 7 * 7, 128),
            bias("b5", 128),
            weight("w6", 128, 128, 10),
            bias("b6", 10),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    checker.check_model(model)
    path = directory / "cnn.onnx"
    path.write_bytes(model.SerializeToString())
    return path


MODELS = {
    "mlp": BenchModel("mlp", (64,), build_mlp),
    "cnn": BenchModel("cnn", (1, 28, 28), build_cnn),
}
