"""``--to-onnx``: a scikit-learn model converted with skl2onnx, and checked.

The converted model must agree with the original on a sample before it is stored:
numbers within a tolerance (ONNX computes in float32, scikit-learn in float64), labels
equal except where the original's top two probabilities are a near tie. The sample is
drawn from a standard normal distribution over the model's ``n_features_in_`` inputs,
as the registry has no data of the model's own to draw from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aios.errors import InvalidInput

__all__ = [
    "ABSOLUTE_TOLERANCE",
    "RELATIVE_TOLERANCE",
    "Conversion",
    "compare_outputs",
    "convert_sklearn_model",
]

SAMPLE_ROWS = 256
ABSOLUTE_TOLERANCE = 1e-4
RELATIVE_TOLERANCE = 1e-3
"""Of the largest magnitude of an output: float32 keeps about 7 significant digits."""
NEAR_TIE = 1e-3
INPUT_NAME = "input"


@dataclass(frozen=True, slots=True)
class Conversion:
    """How the converted model compared with the original on ``rows`` sample rows."""

    max_difference: float
    tolerance: float
    rows: int
    converter: str


def _load(source: Path) -> Any:
    import joblib

    try:
        return joblib.load(source)
    except Exception as exc:  # a pickle can fail in any way its classes choose
        raise InvalidInput(f"to_onnx: cannot load {source.name}: {exc}") from None


def _reference(model: Any, sample: Any) -> list[Any]:
    """What scikit-learn answers, in the order skl2onnx names the outputs."""
    from sklearn.base import is_classifier

    if is_classifier(model) and hasattr(model, "predict_proba"):
        return [model.predict(sample), model.predict_proba(sample)]
    if hasattr(model, "predict"):
        return [model.predict(sample)]
    if hasattr(model, "transform"):
        return [model.transform(sample)]
    raise InvalidInput(f"to_onnx: {type(model).__name__} has neither predict nor transform")


def compare_outputs(expected: list[Any], got: list[Any]) -> tuple[float, float]:
    """Compares scikit-learn's outputs (``expected``: labels, then probabilities for a
    classifier) with the ONNX model's, in order. Returns the largest difference between
    numeric outputs and the tolerance it had to be within; InvalidInput when they
    disagree."""
    import numpy as np

    largest, bound = 0.0, ABSOLUTE_TOLERANCE
    probabilities = expected[1] if len(expected) > 1 else None
    for index, (reference, converted) in enumerate(zip(expected, got, strict=False)):
        want, have = np.asarray(reference), np.asarray(converted)
        if want.size != have.size:
            raise InvalidInput(
                f"to_onnx: output {index} has shape {have.shape}, scikit-learn gives {want.shape}"
            )
        have = have.reshape(want.shape)
        if not np.issubdtype(want.dtype, np.floating):
            wrong = want != have
            if probabilities is not None and wrong.any():
                top = np.sort(np.asarray(probabilities), axis=1)
                wrong &= (top[:, -1] - top[:, -2]) > NEAR_TIE
            if wrong.any():
                raise InvalidInput(
                    f"to_onnx: the ONNX model gives other labels than scikit-learn for "
                    f"{int(wrong.sum())} of {want.shape[0]} sample rows"
                )
            continue
        difference = float(np.max(np.abs(want - have))) if want.size else 0.0
        tolerance = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * float(np.max(np.abs(want)))
        if not difference <= tolerance:  # also refuses NaN
            raise InvalidInput(
                f"to_onnx: output {index} differs from scikit-learn's by {difference:.3g} "
                f"(tolerance {tolerance:.3g})"
            )
        largest, bound = max(largest, difference), max(bound, tolerance)
    return largest, bound


def convert_sklearn_model(
    source: Path, target: Path, rows: int = SAMPLE_ROWS, seed: int = 0
) -> Conversion:
    """Converts the pickled scikit-learn model ``source`` to ONNX at ``target`` (one
    float input named ``input``; classifiers give tensors, not ZipMaps) and checks it
    against the original on ``rows`` random rows. Raises InvalidInput with the reason
    when the model cannot be loaded or converted, or the two disagree."""
    model = _load(source)
    features = getattr(model, "n_features_in_", None)
    if not isinstance(features, int) or features < 1:
        raise InvalidInput(
            f"to_onnx: {type(model).__name__} is not a fitted scikit-learn model "
            "(it has no n_features_in_)"
        )
    try:
        import numpy as np
        import onnxruntime
        import skl2onnx
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.base import is_classifier
    except ModuleNotFoundError as exc:
        raise InvalidInput(
            f"to_onnx: {exc.name} is not installed (pip install 'aios[sklearn]')"
        ) from None
    options = {id(model): {"zipmap": False}} if is_classifier(model) else None
    try:
        onnx_model = skl2onnx.convert_sklearn(
            model,
            initial_types=[(INPUT_NAME, FloatTensorType([None, features]))],
            options=options,
        )
    except Exception as exc:  # skl2onnx raises many kinds for what it cannot convert
        raise InvalidInput(
            f"to_onnx: skl2onnx cannot convert {type(model).__name__}: {exc}"
        ) from None
    # skl2onnx names the graph with a random uuid: a fixed name makes the same model
    # convert to the same bytes, so that registering it twice stores it once.
    onnx_model.graph.name = type(model).__name__
    serialized = onnx_model.SerializeToString()
    sample = np.random.default_rng(seed).standard_normal((rows, features)).astype(np.float32)
    session = onnxruntime.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: sample})
    largest, tolerance = compare_outputs(_reference(model, sample), got)
    target.write_bytes(serialized)
    return Conversion(largest, tolerance, rows, f"skl2onnx {skl2onnx.__version__}")
