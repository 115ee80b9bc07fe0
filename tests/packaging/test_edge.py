"""``--edge``: the bundle's ONNX model answers as the original does (within what int8
costs), its runner works in a Python that has only onnxruntime and numpy, and its
report says the size, latency and largest difference of each variant."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import joblib
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline

from aios.errors import InvalidInput
from aios.packaging import ModelArtifact, export_edge

BARE_PACKAGES = ("numpy", "numpy.libs", "onnxruntime")
"""All a device needs for the runner: onnxruntime imports only numpy beyond the stdlib."""


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv's python whose site-packages hold only numpy and onnxruntime (linked from
    this environment's), so the runner cannot lean on aios or scikit-learn."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = Path(sysconfig.get_paths()["purelib"])
    for package in BARE_PACKAGES:
        if (ours / package).exists():
            (site / package).symlink_to(ours / package)
    return python


@pytest.fixture(scope="session")
def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    features, labels = load_digits(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(
        features.astype(np.float32), labels, test_size=200, random_state=0
    )
    return train_x, test_x, train_y, test_y


@pytest.fixture(scope="session")
def digits_mlp(
    tmp_path_factory: pytest.TempPathFactory,
    digits_split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> ModelArtifact:
    """An MLP 64→256→10: enough weights for int8 to shrink the file."""
    train_x, _, train_y, _ = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few epochs are enough
        mlp = MLPClassifier(hidden_layer_sizes=(256,), max_iter=30, random_state=0)
        mlp.fit(train_x / 16, train_y)
    path = tmp_path_factory.mktemp("digits") / "digits.joblib"
    joblib.dump(mlp, path)
    return ModelArtifact("digits", 1, "sklearn", path)


@pytest.mark.parametrize(
    ("module", "importable"), [("onnxruntime", True), ("sklearn", False), ("aios", False)]
)
def test_bare_python_has_only_onnxruntime_and_numpy(
    bare_python: Path, module: str, importable: bool
) -> None:
    result = subprocess.run([bare_python, "-I", "-c", f"import {module}"], check=False)
    assert (result.returncode == 0) is importable


def run_runner(python: Path, bundle: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-I", bundle / "runner.py", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_sklearn_bundle_holds_model_runner_sample_and_report(
    tmp_path: Path, sklearn_model: ModelArtifact
) -> None:
    report = export_edge(sklearn_model, tmp_path / "edge", runs=5)
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == [
        "model.onnx",
        "report.json",
        "runner.py",
        "sample.npy",
    ]
    written = json.loads((tmp_path / "edge" / "report.json").read_text())
    assert written == report.to_json()
    assert [variant["name"] for variant in written["variants"]] == [
        "sklearn (original)",
        "onnx fp32",
    ]
    assert written["exported"] == "onnx fp32"
    fp32 = report.variants[1]
    assert fp32.size_bytes == (tmp_path / "edge" / "model.onnx").stat().st_size
    assert fp32.median_latency_ms > 0
    by_output = {difference.output: difference for difference in fp32.differences}
    assert by_output["label"].mismatched == 0
    probabilities = by_output["probabilities"].max_abs
    assert probabilities is not None and probabilities < 1e-5
    assert "| onnx fp32 (written) |" in report.table()


def test_exported_model_keeps_the_servers_input_and_output_names(
    tmp_path: Path, sklearn_model: ModelArtifact
) -> None:
    export_edge(sklearn_model, tmp_path / "edge", runs=1)
    graph = onnx.load(str(tmp_path / "edge" / "model.onnx")).graph
    assert [node.name for node in graph.input] == ["input"]
    assert [node.name for node in graph.output] == ["label", "probabilities"]


def test_regressor_output_is_renamed_as_the_server_names_it(tmp_path: Path) -> None:
    """skl2onnx calls a regressor's output ``variable``; the bundle calls it ``label``."""
    features, targets = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        regressor = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
        regressor.fit(features[:200], targets[:200].astype(float))
    joblib.dump(regressor, tmp_path / "regressor.joblib")
    model = ModelArtifact("regressor", 1, "sklearn", tmp_path / "regressor.joblib")
    report = export_edge(model, tmp_path / "edge", runs=1)
    graph = onnx.load(str(tmp_path / "edge" / "model.onnx")).graph
    assert [node.name for node in graph.output] == ["label"]
    (difference,) = report.variants[1].differences
    assert difference.max_abs is not None and difference.max_abs < 1e-3


def test_runner_in_a_bare_python_matches_the_original(
    tmp_path: Path,
    sklearn_model: ModelArtifact,
    iris: tuple[np.ndarray, np.ndarray],
    iris_pipeline: Pipeline,
    bare_python: Path,
) -> None:
    """A python with only numpy and onnxruntime runs the bundle's runner on an .npy file
    and writes the original's labels and probabilities."""
    bundle = tmp_path / "edge"
    export_edge(sklearn_model, bundle, runs=1)
    features = iris[0][::10]
    np.save(tmp_path / "input.npy", features.astype(np.float64))  # the runner casts
    result = run_runner(
        bare_python, bundle, tmp_path / "input.npy", "--output", tmp_path / "out.npz"
    )
    assert result.returncode == 0, result.stderr
    assert "probabilities float32 [15, 3]" in result.stdout
    with np.load(tmp_path / "out.npz") as outputs:
        np.testing.assert_array_equal(outputs["label"], iris_pipeline.predict(features))
        np.testing.assert_allclose(
            outputs["probabilities"], iris_pipeline.predict_proba(features), atol=1e-5
        )


def test_runner_has_help_and_times_runs(
    tmp_path: Path, sklearn_model: ModelArtifact, bare_python: Path
) -> None:
    bundle = tmp_path / "edge"
    export_edge(sklearn_model, bundle, runs=1)
    help_text = run_runner(bare_python, bundle, "--help")
    assert help_text.returncode == 0
    assert "usage: runner.py" in help_text.stdout and "--output" in help_text.stdout
    timed = run_runner(bare_python, bundle, bundle / "sample.npy", "--runs", "3")
    assert timed.returncode == 0, timed.stderr
    assert "median latency over 3 runs" in timed.stdout


def test_runner_refuses_an_input_that_does_not_fit(
    tmp_path: Path, sklearn_model: ModelArtifact, bare_python: Path
) -> None:
    bundle = tmp_path / "edge"
    export_edge(sklearn_model, bundle, runs=1)
    np.savez(tmp_path / "wrong.npz", features=np.zeros((2, 4), np.float32))
    result = run_runner(bare_python, bundle, tmp_path / "wrong.npz")
    assert result.returncode == 2
    assert "inputs missing: ['input']; not in the model: ['features']" in result.stderr


def test_runner_feeds_several_inputs_from_an_npz(tmp_path: Path, bare_python: Path) -> None:
    """A model with two inputs (built with the onnx helper API) takes them by name."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["total"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 3]),
        ],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 3])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 9
    onnx.save(proto, str(tmp_path / "add.onnx"))
    bundle = tmp_path / "edge"
    report = export_edge(ModelArtifact("add", 1, "onnx", tmp_path / "add.onnx"), bundle, runs=1)
    assert (bundle / "sample.npz").is_file()
    assert report.variants[1].max_abs_difference == 0.0
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 3), np.float32)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    result = run_runner(bare_python, bundle, tmp_path / "in.npz", "--output", tmp_path / "o.npz")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "o.npz") as outputs:
        np.testing.assert_array_equal(outputs["total"], a + b)


@pytest.mark.slow
def test_int8_is_smaller_and_close_on_held_out_digits(
    tmp_path: Path,
    digits_mlp: ModelArtifact,
    digits_split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    bare_python: Path,
) -> None:
    """int8 dynamic quantization shrinks the MLP to under a third, keeps the predicted
    class of nearly every held-out digit, and the runner runs the int8 graph."""
    _, test_x, _, test_y = digits_split
    sample = {"input": test_x / 16}
    bundle = tmp_path / "edge"
    report = export_edge(digits_mlp, bundle, int8=True, sample=sample, runs=5)
    _, fp32, int8 = report.variants
    assert [v.name for v in report.variants] == ["sklearn (original)", "onnx fp32", "onnx int8"]
    assert report.exported == "onnx int8"
    assert int8.size_bytes == (bundle / "model.onnx").stat().st_size
    assert int8.size_bytes < fp32.size_bytes / 3
    operators = {node.op_type for node in onnx.load(str(bundle / "model.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in operators or "MatMulInteger" in operators
    labels = {d.output: d for d in int8.differences}["label"]
    assert labels.elements == len(test_y) and labels.mismatched is not None
    assert labels.mismatched <= len(test_y) // 20  # at most 5 % of the answers change
    assert int8.max_abs_difference is not None and 0 < int8.max_abs_difference < 0.5
    np.save(tmp_path / "digits.npy", test_x / 16)
    result = run_runner(
        bare_python, bundle, tmp_path / "digits.npy", "--output", tmp_path / "out.npz"
    )
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out.npz") as outputs:
        accuracy = float(np.mean(outputs["label"] == test_y))
    assert accuracy > 0.9


def test_python_model_cannot_go_to_onnx(tmp_path: Path, python_model: ModelArtifact) -> None:
    with pytest.raises(
        InvalidInput, match=r"doubler@2 is a python model, which cannot be exported"
    ):
        export_edge(python_model, tmp_path / "edge")
    assert not (tmp_path / "edge").exists()


def test_sample_that_does_not_fit_is_refused_naming_the_input(
    tmp_path: Path, sklearn_model: ModelArtifact
) -> None:
    with pytest.raises(InvalidInput, match="input 'input': shape"):
        export_edge(
            sklearn_model, tmp_path / "edge", sample={"input": np.zeros((2, 5), np.float32)}
        )
    assert not (tmp_path / "edge").exists()


def test_non_empty_directory_is_refused_unless_forced(
    tmp_path: Path, sklearn_model: ModelArtifact
) -> None:
    bundle = tmp_path / "edge"
    bundle.mkdir()
    (bundle / "old.txt").write_text("old")
    with pytest.raises(InvalidInput, match="not empty"):
        export_edge(sklearn_model, bundle, runs=1)
    assert [p.name for p in bundle.iterdir()] == ["old.txt"]
    export_edge(sklearn_model, bundle, runs=1, force=True)
    assert not (bundle / "old.txt").exists() and (bundle / "model.onnx").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_int8_of_a_scaler_and_classifier_pipeline(
    tmp_path: Path, sklearn_model: ModelArtifact
) -> None:
    """A pipeline whose conversion lists an opset once per step still quantizes."""
    report = export_edge(sklearn_model, tmp_path / "edge", int8=True, runs=1)
    assert report.exported == "onnx int8"
    assert {d.output for d in report.variants[2].differences} == {"label", "probabilities"}
