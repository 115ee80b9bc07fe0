"""Edge export: size, latency and accuracy of the int8 model against fp32.

Usage: python benchmarks/bench_edge.py [--runs 200] [--epochs 20]

The model is an MLP 784→512→512→10 trained with scikit-learn on the bundled digits,
upscaled from 8×8 to 28×28 (MNIST's shape), 1,297 for training and 500 held out. It
goes through ``export_edge`` twice, as ``aios model export --edge`` runs it: fp32 (the
baseline, measured in the same run) and ``--int8`` (onnxruntime's dynamic
quantization). Each ONNX file is then timed with onnxruntime on one CPU thread at batch
1 (one request on a device) and on the whole held-out batch, median of ``--runs``, and scored
on the held-out digits: accuracy, answers that differ from scikit-learn's, and the
largest difference of a class probability.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from aios.packaging import ModelArtifact, export_edge

HELD_OUT = 500


@dataclass(frozen=True)
class Row:
    variant: str
    size: int
    batch1_ms: float
    batch_ms: float
    accuracy: float
    changed: int
    max_probability_diff: float


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """The 8×8 digits as 28×28 images in [0, 1]: each pixel a 4×4 block, 2 cropped."""
    images, labels = load_digits(return_X_y=True)
    blocks = np.kron(images.reshape(-1, 8, 8), np.ones((4, 4)))[:, 2:30, 2:30]
    return (blocks.reshape(len(images), 784) / 16).astype(np.float32), labels


def median_ms(session: ort.InferenceSession, feed: dict[str, np.ndarray], runs: int) -> float:
    for _ in range(3):
        session.run(None, feed)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1e3


def measure(
    variant: str, path: Path, test_x: np.ndarray, test_y: np.ndarray, mlp: Any, runs: int
) -> Row:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one core, as on a small device; steadier when shared
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"input": test_x})
    return Row(
        variant=variant,
        size=path.stat().st_size,
        batch1_ms=median_ms(session, {"input": test_x[:1]}, runs),
        batch_ms=median_ms(session, {"input": test_x}, runs),
        accuracy=float(np.mean(labels == test_y)),
        changed=int(np.count_nonzero(labels != mlp.predict(test_x))),
        max_probability_diff=float(np.abs(probabilities - mlp.predict_proba(test_x)).max()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per figure")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs of the MLP")
    args = parser.parse_args()

    features, labels = digits_28x28()
    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=HELD_OUT, random_state=0, stratify=labels
    )
    mlp = MLPClassifier(hidden_layer_sizes=(512, 512), max_iter=args.epochs, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few epochs are enough
        mlp.fit(train_x, train_y)
    sklearn_accuracy = float(np.mean(mlp.predict(test_x) == test_y))

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as scratch:
        root = Path(scratch)
        joblib.dump(mlp, root / "mlp.joblib")
        model = ModelArtifact("mlp", 1, "sklearn", root / "mlp.joblib")
        sample = {"input": test_x}
        for int8 in (False, True):
            bundle = root / ("int8" if int8 else "fp32")
            export_edge(model, bundle, int8=int8, sample=sample, runs=5)
            variant = "onnx int8" if int8 else "onnx fp32 (baseline)"
            rows.append(measure(variant, bundle / "model.onnx", test_x, test_y, mlp, args.runs))

    fp32 = rows[0]
    print(f"MLP 784-512-512-10, {len(train_x)} training digits, {HELD_OUT} held out")
    print(f"scikit-learn accuracy on the held-out digits: {sklearn_accuracy:.3f}")
    print(f"onnxruntime {ort.__version__}, 1 CPU thread, median of {args.runs} runs\n")
    print(
        "| variant | size | size / fp32 | batch 1 ms | / fp32 | batch 500 ms | / fp32 "
        "| accuracy | Δ accuracy | answers changed | max Δ probability |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row.variant} | {row.size / 1024:,.0f} KiB | {row.size / fp32.size:.2f} "
            f"| {row.batch1_ms:.3f} | {row.batch1_ms / fp32.batch1_ms:.2f} "
            f"| {row.batch_ms:.2f} | {row.batch_ms / fp32.batch_ms:.2f} "
            f"| {row.accuracy:.3f} | {row.accuracy - fp32.accuracy:+.3f} "
            f"| {row.changed}/{HELD_OUT} | {row.max_probability_diff:.2g} |"
        )


if __name__ == "__main__":
    main()
