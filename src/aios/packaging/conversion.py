"""Model versions as ONNX graphs, for an edge bundle.

An ONNX version is taken as it is; a scikit-learn one is converted with skl2onnx
(classifiers give plain ``label`` and ``probabilities`` tensors, not skl2onnx's default
list of dicts, which no edge runtime reads); TorchScript is exported with
``torch.onnx`` when torch is installed. A ``python`` version is arbitrary code and has
no ONNX form: refused. The int8 variant is onnxruntime's dynamic quantization: weights
stored as int8, activations quantized per batch at run time, no calibration data.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from aios.errors import InvalidInput
from aios.packaging.model import ModelArtifact

__all__ = ["EXPORTABLE_FORMATS", "check_exportable", "quantize_int8", "to_onnx"]

EXPORTABLE_FORMATS = ("onnx", "sklearn", "torchscript")

Arrays = dict[str, np.ndarray[Any, Any]]


def check_exportable(fmt: str, label: str) -> None:
    """Raises InvalidInput unless format ``fmt`` has an ONNX form; ``label`` names the
    model version in the message (``NAME@VERSION``)."""
    if fmt not in EXPORTABLE_FORMATS:
        raise InvalidInput(
            f"{label} is a {fmt} model, which cannot be exported to ONNX "
            f"(exportable formats: {', '.join(EXPORTABLE_FORMATS)})"
        )


def to_onnx(model: ModelArtifact, sample: Arrays) -> onnx.ModelProto:
    """``model`` as an ONNX graph whose inputs are named and typed as in ``sample`` (one
    array per input of the original, as its runtime takes them).

    Raises InvalidInput when the format has no ONNX form or the converter refuses the
    model (its reason in the message).
    """
    check_exportable(model.format, model.label)
    try:
        if model.format == "onnx":
            return onnx.load(str(model.path))
        if model.format == "sklearn":
            return _sklearn_to_onnx(model.path, sample)
        return _torchscript_to_onnx(model.path, sample)
    except InvalidInput:
        raise
    except Exception as exc:  # a converter's refusal: an estimator skl2onnx does not know
        reason = str(exc).strip() or type(exc).__name__
        raise InvalidInput(f"cannot convert {model.label} to ONNX: {reason}") from exc


def quantize_int8(source: Path, destination: Path) -> None:
    """Writes the int8 dynamic quantization of the ONNX model at ``source``.

    The graph is first pre-processed as onnxruntime recommends (shape inference and
    graph optimization, which fuse MatMul and Add so more of the graph quantizes);
    symbolic shape inference is skipped, as it needs sympy and the batch axis is the
    only symbolic one.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = destination.with_name(f"{destination.stem}.prepared.onnx")
    try:
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        quantize_dynamic(prepared, destination, weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)


def _sklearn_to_onnx(path: Path, sample: Arrays) -> onnx.ModelProto:
    import joblib
    from skl2onnx import to_onnx as skl_to_onnx
    from skl2onnx.common import data_types
    from sklearn.base import is_classifier

    tensor_types = {
        "f4": data_types.FloatTensorType,
        "f8": data_types.DoubleTensorType,
        "i8": data_types.Int64TensorType,
        "i4": data_types.Int32TensorType,
        "b1": data_types.BooleanTensorType,
    }
    estimator = joblib.load(path)
    initial_types = []
    for name, array in sample.items():
        tensor_type = tensor_types.get(f"{array.dtype.kind}{array.dtype.itemsize}")
        if tensor_type is None:
            raise InvalidInput(f"input {name!r}: skl2onnx cannot take {array.dtype} tensors")
        # The batch dimension stays free, as the original takes any number of rows.
        initial_types.append((name, tensor_type([None, *array.shape[1:]])))
    options = {"zipmap": False} if is_classifier(estimator) else None
    converted: onnx.ModelProto = skl_to_onnx(
        estimator, initial_types=initial_types, options=options
    )
    return _merged_opsets(converted)


def _merged_opsets(graph: onnx.ModelProto) -> onnx.ModelProto:
    """``graph`` with one opset import per domain (the highest version). skl2onnx lists
    the default domain once per converted step of a pipeline, and onnxruntime's
    quantizer refuses such a model ("Failed to find proper ai.onnx domain")."""
    versions: dict[str, int] = {}
    for opset in graph.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del graph.opset_import[:]
    graph.opset_import.extend(
        onnx.helper.make_opsetid(domain, version) for domain, version in versions.items()
    )
    return graph


def _torchscript_to_onnx(path: Path, sample: Arrays) -> onnx.ModelProto:
    try:
        # Optional and untyped here: torch is installed only where TorchScript is used.
        torch: Any = importlib.import_module("torch")
    except ImportError:
        raise InvalidInput(
            "exporting a torchscript model needs torch, which is not installed here"
        ) from None
    module = torch.jit.load(str(path), map_location="cpu")
    buffer = io.BytesIO()
    names = list(sample)
    torch.onnx.export(
        module,
        tuple(torch.from_numpy(array) for array in sample.values()),
        buffer,
        input_names=names,
        dynamic_axes={name: {0: "batch"} for name in names},
    )
    return onnx.load_from_string(buffer.getvalue())
