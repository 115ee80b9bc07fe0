"""``aios model export --edge``: a bundle that runs a model version on a device with
only onnxruntime and numpy, and the figures that say what the export cost.

The bundle (:func:`export_edge`):

- ``model.onnx``: the version as ONNX (:mod:`aios.packaging.conversion`), int8
  dynamically quantized when asked; inputs and outputs keep the names the server's
  runtime gives them, so a client of the server can switch to the bundle;
- ``runner.py``: :mod:`aios.packaging.runner`, standalone;
- ``sample.npy`` (``sample.npz`` for several inputs): the inputs measured on, an
  example for the runner;
- ``report.json``: :class:`EdgeReport`, the size, the median latency and the largest
  output difference against the original of each variant.

The original is the version loaded by the server's own runtime, so "difference" means
difference from what ``aios serve`` answers.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from aios.errors import InvalidInput
from aios.packaging.conversion import check_exportable, quantize_int8, to_onnx
from aios.packaging.model import ModelArtifact
from aios.packaging.report import EdgeReport, OutputDifference, Variant
from aios.packaging.target import check_destination, staged_directory
from aios.serving.runtimes import Signature, load_runtime
from aios.serving.tensors import numpy_dtype

__all__ = ["MODEL_FILE", "RUNNER_FILE", "export_edge", "sample_inputs"]

Arrays = dict[str, np.ndarray[Any, Any]]

MODEL_FILE = "model.onnx"
RUNNER_FILE = "runner.py"
REPORT_FILE = "report.json"
SAMPLE_ROWS = 64
"""Rows of a sample generated from the signature: a batch, not a single request."""
WARMUP_RUNS = 3


def export_edge(
    model: ModelArtifact,
    destination: Path,
    *,
    int8: bool = False,
    sample: Arrays | None = None,
    runs: int = 50,
    force: bool = False,
) -> EdgeReport:
    """Writes the edge bundle of ``model`` into ``destination`` and returns its report.

    ``sample`` holds the inputs to measure on, by name; None: :func:`sample_inputs` of
    the signature. Raises InvalidInput, before anything is written, for a format with no
    ONNX form, a destination that is not empty (unless ``force``), a sample that does
    not fit the model, or a model the converter refuses.
    """
    if runs < 1:
        raise InvalidInput(f"--runs must be 1 or more, got {runs}")
    check_exportable(model.format, model.label)
    check_destination(destination, force=force)
    original = load_runtime(model.format, model.path)
    if sample is None:
        sample = sample_inputs(original.signature, rows=SAMPLE_ROWS)
    original.signature.check_inputs(sample)
    output_names = [spec.name for spec in original.signature.outputs]
    reference = original.predict(sample)
    variants = [
        Variant(
            name=f"{model.format} (original)",
            size_bytes=_size(model.path),
            median_latency_ms=_median_ms(lambda: original.predict(sample), runs),
            differences=(),
        )
    ]
    graph = _with_output_names(to_onnx(model, sample), output_names)
    with tempfile.TemporaryDirectory(prefix="aios-edge-") as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        onnx.save(graph, str(fp32))
        variants.append(_measure("onnx fp32", fp32, sample, reference, runs))
        exported = fp32
        if int8:
            exported = Path(scratch) / "int8.onnx"
            quantize_int8(fp32, exported)
            variants.append(_measure("onnx int8", exported, sample, reference, runs))
        report = EdgeReport(
            model=model.label,
            format=model.format,
            exported=variants[-1].name,
            sample_shapes={name: list(array.shape) for name, array in sample.items()},
            runs=runs,
            variants=tuple(variants),
        )
        with staged_directory(destination, force=force) as staging:
            shutil.copyfile(exported, staging / MODEL_FILE)
            shutil.copyfile(Path(__file__).with_name("runner.py"), staging / RUNNER_FILE)
            if len(sample) == 1:
                np.save(staging / "sample.npy", next(iter(sample.values())))
            else:
                np.savez(staging / "sample.npz", allow_pickle=False, **sample)
            (staging / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return report


def sample_inputs(signature: Signature, *, rows: int = SAMPLE_ROWS, seed: int = 0) -> Arrays:
    """Inputs that fit ``signature``: ``rows`` for a free first dimension, 1 for any
    other free one; standard normal floats, small non-negative integers, random
    booleans. Seeded: the same every call.

    Raises InvalidInput for a datatype that cannot be made up (``BYTES``).
    """
    generator = np.random.default_rng(seed)
    sample: Arrays = {}
    for spec in signature.inputs:
        shape = tuple(
            (rows if axis == 0 else 1) if dim == -1 else dim for axis, dim in enumerate(spec.shape)
        )
        dtype = numpy_dtype(spec.datatype, tensor=spec.name)
        if dtype.kind == "f":
            sample[spec.name] = generator.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            sample[spec.name] = generator.integers(0, 10, shape).astype(dtype)
        elif dtype.kind == "b":
            sample[spec.name] = generator.integers(0, 2, shape).astype(np.bool_)
        else:
            raise InvalidInput(
                f"input {spec.name!r} is {spec.datatype}: give a sample (--sample FILE)"
            )
    return sample


def _measure(name: str, path: Path, sample: Arrays, reference: Arrays, runs: int) -> Variant:
    """Size, median latency and differences from ``reference`` of the ONNX model at
    ``path``, run by onnxruntime on the CPU as the runner runs it."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names: list[str] = [node.name for node in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, sample), strict=True))
    return Variant(
        name=name,
        size_bytes=path.stat().st_size,
        median_latency_ms=_median_ms(lambda: session.run(names, sample), runs),
        differences=tuple(
            _difference(output, reference[output], np.asarray(value))
            for output, value in outputs.items()
            if output in reference
        ),
    )


def _difference(
    name: str, expected: np.ndarray[Any, Any], got: np.ndarray[Any, Any]
) -> OutputDifference:
    """How far ``got`` is from ``expected``: the largest absolute difference for floating
    outputs; for the others (labels) the count of elements that differ, as a class
    label 2 against 7 is a wrong answer, not a difference of 5."""
    if expected.size != got.size:
        raise RuntimeError(f"output {name!r}: {expected.shape} against {got.shape}")
    expected, got = expected.reshape(-1), got.reshape(-1)
    if expected.dtype.kind == "f" and got.dtype.kind == "f":
        delta = np.abs(expected.astype(np.float64) - got.astype(np.float64))
        return OutputDifference(name, expected.size, max_abs=float(delta.max(initial=0.0)))
    if expected.dtype.kind in "biuf" and got.dtype.kind in "biuf":
        differ = expected != got
    else:
        differ = expected.astype(str) != got.astype(str)
    return OutputDifference(name, expected.size, mismatched=int(np.count_nonzero(differ)))


def _with_output_names(graph: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """``graph`` with its outputs named as the original's (``names``, in order), by an
    Identity node per renamed output; a graph whose outputs cannot be paired (another
    count) is returned as it is, and only same-named outputs are compared."""
    outputs = list(graph.graph.output)
    if len(outputs) != len(names) or [o.name for o in outputs] == names:
        return graph
    renamed = onnx.ModelProto()
    renamed.CopyFrom(graph)
    for output, name in zip(renamed.graph.output, names, strict=True):
        if output.name != name:
            renamed.graph.node.append(onnx.helper.make_node("Identity", [output.name], [name]))
            output.name = name
    return renamed


def _median_ms(call: Callable[[], object], runs: int) -> float:
    for _ in range(WARMUP_RUNS):
        call()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1e3


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    return path.stat().st_size
