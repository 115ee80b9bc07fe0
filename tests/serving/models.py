"""Model artifacts for the serving tests, built in code: nothing is downloaded.

scikit-learn models trained on the bundled digits, the ONNX conversion of one through
skl2onnx, an ONNX graph from the onnx helper API, and Python-class models written as
source files.
"""

from __future__ import annotations

import pickle
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier


def digits() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The 1,797 8×8 digits as FP32 features in [0, 1] and their labels."""
    features, labels = load_digits(return_X_y=True)
    return (features / 16.0).astype(np.float32), labels


def train_mlp(hidden: tuple[int, ...] = (32,)) -> MLPClassifier:
    features, labels = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short fit does not converge, on purpose
        return MLPClassifier(hidden_layer_sizes=hidden, max_iter=15, random_state=0).fit(
            features, labels
        )


def train_logistic() -> LogisticRegression:
    features, labels = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(max_iter=50).fit(features, labels)


def write_onnx(estimator: Any, path: Path, *, zipmap: bool = False) -> Path:
    """``estimator`` converted with skl2onnx; classifiers give plain tensors unless
    ``zipmap`` (skl2onnx's default, a list of dicts the V2 protocol cannot carry)."""
    sample = digits()[0][:1]
    options = None if zipmap else {id(estimator): {"zipmap": False}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = to_onnx(estimator, sample, options=options, target_opset=17)
    path.write_bytes(model.SerializeToString())
    return path


def write_pickle(estimator: Any, path: Path) -> Path:
    with path.open("wb") as file:
        pickle.dump(estimator, file)
    return path


def write_scale_graph(path: Path, factor: float = 2.0) -> Path:
    """An ONNX graph from the helper API: ``y = x * factor`` with ``x`` FP32
    ``[batch, 3]`` (a symbolic first dim) and a second INT64 input ``n`` ``[batch]``
    passed through as ``m``."""
    scale = helper.make_tensor("factor", TensorProto.FLOAT, [], [factor])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "factor"], ["y"]),
            helper.make_node("Identity", ["n"], ["m"]),
        ],
        "scale",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("n", TensorProto.INT64, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("m", TensorProto.INT64, ["batch"]),
        ],
        initializer=[scale],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


ADDER = '''
import numpy as np


class Model:
    """Adds {offset} to every value; "shape" is the width of its input."""

    signature = {{
        "inputs": [{{"name": "x", "datatype": "FP32", "shape": [-1, -1]}}],
        "outputs": [{{"name": "y", "datatype": "FP32", "shape": [-1, -1]}}],
    }}

    def load(self, path):
        self.path = path

    def predict(self, inputs):
        return {{"y": inputs["x"] + np.float32({offset})}}
'''

SHOUTER = '''
import numpy as np


class Shouter:
    """Upper-cases BYTES; the signature comes from a method, after load."""

    def load(self, path):
        with open(path + "/suffix.txt", "rb") as file:
            self.suffix = file.read()

    def signature(self):
        return {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "loud", "datatype": "BYTES", "shape": [-1]},
                {"name": "length", "datatype": "INT32", "shape": [-1]},
            ],
        }

    def predict(self, inputs):
        texts = [bytes(t).upper() + self.suffix for t in inputs["text"].tolist()]
        loud = np.empty(len(texts), dtype=object)
        loud[:] = texts
        return {"loud": loud, "length": np.array([len(t) for t in texts], dtype=np.int32)}
'''


def write_adder(path: Path, offset: float) -> Path:
    """A Python-class model file adding ``offset`` (a ``.py`` file)."""
    path.write_text(textwrap.dedent(ADDER.format(offset=offset)))
    return path


def write_shouter(directory: Path) -> Path:
    """A Python-class model directory: ``model.py`` and a data file it loads."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.py").write_text(SHOUTER)
    (directory / "suffix.txt").write_bytes(b"!")
    return directory


ENV_PROBE = """
import os
import subprocess
import sys

import numpy as np

NAME = "AIOS_REPLICA_SECRET"


class Model:
    \"\"\"Where its code finds the replica secret: at load, at predict, in a child.\"\"\"

    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "found", "datatype": "FP32", "shape": [-1]}],
    }

    def load(self, path):
        self.at_load = NAME in os.environ

    def predict(self, inputs):
        child = subprocess.run(
            [sys.executable, "-c", f"import os; print(os.environ.get({NAME!r}, ''))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        places = [self.at_load, NAME in os.environ, bool(child)]
        return {"found": np.array(places, dtype=np.float32)}
"""


def write_env_probe(directory: Path) -> Path:
    """A Python-class model directory whose ``found`` output is 1.0 for each place its
    code finds the replica secret: ``os.environ`` at load, at predict, and a child
    process's environment (input ``x``, any FP32 vector)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.py").write_text(ENV_PROBE)
    return directory
