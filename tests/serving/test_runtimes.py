"""Runtimes: each format loads into a signature and a predict that agrees with the
framework itself; a file that does not load is refused with the loader's reason."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from aios.errors import InvalidInput
from aios.serving.runtimes import LOADERS, Signature, TensorSpec, load_runtime
from tests.serving.conftest import Artifacts
from tests.serving.models import digits

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_onnx_from_skl2onnx_reads_its_signature_and_agrees_with_sklearn(
    artifacts: Artifacts,
) -> None:
    runtime = load_runtime("onnx", artifacts.mlp_onnx)
    assert runtime.signature == Signature(
        (TensorSpec("X", "FP32", (-1, 64)),),
        (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 10))),
    )
    features = digits()[0][:50]
    outputs = runtime.predict({"X": features})
    np.testing.assert_array_equal(outputs["label"], artifacts.mlp.predict(features))
    np.testing.assert_allclose(
        outputs["probabilities"], artifacts.mlp.predict_proba(features), atol=1e-5
    )


def test_onnx_helper_graph_maps_symbolic_dims_to_minus_one(artifacts: Artifacts) -> None:
    runtime = load_runtime("onnx", artifacts.scale_onnx)
    assert runtime.signature.to_json() == {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "n", "datatype": "INT64", "shape": [-1]},
        ],
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "m", "datatype": "INT64", "shape": [-1]},
        ],
    }
    outputs = runtime.predict({"x": np.ones((2, 3), np.float32), "n": np.array([4, 5])})
    np.testing.assert_array_equal(outputs["y"], np.full((2, 3), 2.0))
    np.testing.assert_array_equal(outputs["m"], [4, 5])


def test_onnx_with_zipmap_outputs_is_refused_with_the_cure(artifacts: Artifacts) -> None:
    with pytest.raises(InvalidInput, match=r"not a V2 tensor.*zipmap=False"):
        load_runtime("onnx", artifacts.zipmap_onnx)


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_sklearn_estimator_gives_label_and_probabilities(
    artifacts: Artifacts, tmp_path: Path, dump: str
) -> None:
    path = artifacts.logistic_pickle
    if dump == "joblib":
        path = tmp_path / "logistic.joblib"
        joblib.dump(artifacts.logistic, path)
    runtime = load_runtime("sklearn", path)
    assert runtime.signature.to_json() == {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        ],
    }
    features = digits()[0][:20]
    outputs = runtime.predict({"input": features})
    np.testing.assert_array_equal(outputs["label"], artifacts.logistic.predict(features))
    assert outputs["probabilities"].dtype == np.float32


def test_python_class_from_a_file_and_from_a_directory(artifacts: Artifacts) -> None:
    """A file's class attribute signature; a directory's signature method after load."""
    adder = load_runtime("python", artifacts.adder_v2)
    assert adder.signature.inputs == (TensorSpec("x", "FP32", (-1, -1)),)
    np.testing.assert_array_equal(adder.predict({"x": np.zeros((1, 2), np.float32)})["y"], [[2, 2]])
    shouter = load_runtime("python", artifacts.shouter)
    assert [spec.datatype for spec in shouter.signature.outputs] == ["BYTES", "INT32"]
    result = shouter.predict({"text": np.array([b"hi"], dtype=object)})
    assert result["loud"].tolist() == [b"HI!"]


def test_signature_json_round_trips() -> None:
    signature = Signature(
        (TensorSpec("a", "BYTES", (-1,)), TensorSpec("b", "FP16", (2, -1, 3))),
        (TensorSpec("c", "BOOL", ()),),
    )
    assert Signature.from_json(json.loads(json.dumps(signature.to_json()))) == signature


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "missing input 'x'; the model takes 'x'"),
        ({"x": np.zeros((1, 3), np.float64)}, "input 'x': datatype FP64, the model takes FP32"),
        ({"x": np.zeros((1, 4), np.float32)}, r"input 'x': shape \[1, 4\], the model takes"),
        ({"x": np.zeros(3, np.float32)}, r"input 'x': shape \[3\]"),
        (
            {"x": np.zeros((1, 3), np.float32), "y": np.zeros(1)},
            "unknown input 'y'; the model takes 'x'",
        ),
    ],
)
def test_inputs_that_do_not_fit_the_signature_are_named(
    inputs: dict[str, np.ndarray[Any, Any]], message: str
) -> None:
    signature = Signature((TensorSpec("x", "FP32", (-1, 3)),), ())
    with pytest.raises(InvalidInput, match=message):
        signature.check_inputs(inputs)


def test_a_signature_remembers_only_the_layouts_it_accepted() -> None:
    """Inputs of a layout accepted once pass again; a different dtype, shape or set of
    inputs is still refused by name, and the memory does not change equality."""
    signature = Signature((TensorSpec("x", "FP32", (-1, 3)),), ())
    for _ in range(2):
        signature.check_inputs({"x": np.zeros((2, 3), np.float32)})
    with pytest.raises(InvalidInput, match="datatype FP64"):
        signature.check_inputs({"x": np.zeros((2, 3), np.float64)})
    with pytest.raises(InvalidInput, match=r"shape \[2, 4\]"):
        signature.check_inputs({"x": np.zeros((2, 4), np.float32)})
    with pytest.raises(InvalidInput, match="unknown input 'y'"):
        signature.check_inputs({"x": np.zeros((2, 3), np.float32), "y": np.zeros(1)})
    assert signature == Signature((TensorSpec("x", "FP32", (-1, 3)),), ())


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("fmt", "name", "content", "reason"),
    [
        ("onnx", "broken.onnx", b"not a protobuf", "Protobuf parsing failed"),
        ("sklearn", "broken.pkl", b"not a pickle", "not a readable pickle or joblib file"),
        ("sklearn", "list.pkl", b"\x80\x04]\x94.", "a list has no predict method"),
        ("python", "syntax.py", "class Model(:\n", "SyntaxError"),
        ("python", "empty.py", "x = 1\n", "expected a class named Model"),
        ("python", "nosig.py", "class Model:\n    def load(self, p): pass\n", "has no signature"),
        ("python", "model.txt", "", "expected a .py file"),
    ],
)
def test_a_model_that_does_not_load_gives_the_loaders_reason(
    tmp_path: Path, fmt: Any, name: str, content: str | bytes, reason: str
) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(
        InvalidInput, match=f"cannot load {fmt} model .*{re.escape(name)}: .*{reason}"
    ):
        load_runtime(fmt, path)


def test_a_missing_file_or_an_unknown_format_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cannot load onnx model .*nothing\.onnx: no such file"):
        load_runtime("onnx", tmp_path / "nothing.onnx")
    with pytest.raises(InvalidInput, match="unknown model format 'tensorflow'"):
        load_runtime("tensorflow", tmp_path)  # type: ignore[arg-type]
    assert sorted(LOADERS) == ["onnx", "python", "sklearn", "torchscript"]


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed: the TorchScript test runs instead")
def test_torchscript_without_torch_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path / "model.pt", b"\x00")
    with pytest.raises(
        InvalidInput, match=r"cannot load torchscript model .*: torch is not installed"
    ):
        load_runtime("torchscript", path)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_torchscript_module_with_its_signature(tmp_path: Path) -> None:  # pragma: no cover
    torch: Any = importlib.import_module("torch")

    class Double(torch.nn.Module):  # type: ignore[misc]
        def forward(self, x: Any) -> Any:
            return x * 2

    signature = Signature((TensorSpec("x", "FP32", (-1, 2)),), (TensorSpec("y", "FP32", (-1, 2)),))
    path = tmp_path / "double.pt"
    torch.jit.save(
        torch.jit.script(Double()),
        str(path),
        _extra_files={"signature.json": json.dumps(signature.to_json())},
    )
    runtime = load_runtime("torchscript", path)
    assert runtime.signature == signature
    outputs = runtime.predict({"x": np.ones((3, 2), np.float32)})
    np.testing.assert_array_equal(outputs["y"], np.full((3, 2), 2.0))


def test_onnx_threads_default_to_the_cores_this_process_may_use(artifacts: Artifacts) -> None:
    """Left to itself onnxruntime would start a thread per core of the machine, pinned
    outside a replica's cores; by default it gets as many as the process may use."""
    for threads, expected in ((None, len(os.sched_getaffinity(0))), (1, 1)):
        runtime: Any = load_runtime("onnx", artifacts.mlp_onnx, threads=threads)
        assert runtime.session.get_session_options().intra_op_num_threads == expected
