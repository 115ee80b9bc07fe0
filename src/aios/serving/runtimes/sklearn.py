"""scikit-learn estimators from a pickle or joblib file.

The signature follows from the fitted estimator: one input ``"input"``, FP32 of shape
``(-1, n_features_in_)``; an output ``"label"`` from ``predict`` (the dtype of
``classes_`` for a classifier, of the predictions otherwise) and, for an estimator
with ``predict_proba``, ``"probabilities"`` FP32 of shape ``(-1, n_classes)``.

Unpickling runs code from the file: only artifacts from a trusted registry are served.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from aios.errors import InvalidInput
from aios.serving.runtimes.base import RuntimeOptions, Signature, TensorSpec
from aios.serving.tensors import datatype_of

__all__ = ["SklearnRuntime", "load_sklearn"]

INPUT = "input"
LABEL = "label"
PROBABILITIES = "probabilities"


class SklearnRuntime:
    """A fitted estimator; ``predict`` and ``predict_proba`` do not change it, so calls
    from several threads are safe."""

    def __init__(self, estimator: Any) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise InvalidInput(f"a {type(estimator).__name__} has no predict method")
        self.estimator = estimator
        features = getattr(estimator, "n_features_in_", None)
        width = int(features) if features is not None else -1
        classes = getattr(estimator, "classes_", None)
        self._proba = classes is not None and callable(getattr(estimator, "predict_proba", None))
        outputs = [TensorSpec(LABEL, self._label_datatype(estimator, classes, width), (-1,))]
        if classes is not None and self._proba:
            outputs.append(TensorSpec(PROBABILITIES, "FP32", (-1, len(classes))))
        self.signature = Signature((TensorSpec(INPUT, "FP32", (-1, width)),), tuple(outputs))

    @staticmethod
    def _label_datatype(estimator: Any, classes: Any, width: int) -> str:
        if classes is not None:
            return datatype_of(np.asarray(classes).dtype)
        if width > 0:
            # A regressor: the dtype its predictions really have.
            return datatype_of(
                np.asarray(estimator.predict(np.zeros((1, width), np.float32))).dtype
            )
        return "FP64"

    def predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        features = inputs[INPUT]
        outputs = {LABEL: np.asarray(self.estimator.predict(features))}
        if self._proba:
            proba = self.estimator.predict_proba(features)
            outputs[PROBABILITIES] = np.asarray(proba, dtype=np.float32)
        return outputs


def load_sklearn(path: Path, options: RuntimeOptions) -> SklearnRuntime:
    """A :class:`SklearnRuntime` for the pickle or joblib file at ``path``."""
    del options  # scikit-learn predicts on the CPU with its own threading
    try:
        estimator = _unpickle(path)
    except Exception as exc:
        raise InvalidInput(
            f"not a readable pickle or joblib file ({type(exc).__name__}: {exc})"
        ) from exc
    return SklearnRuntime(estimator)


def _unpickle(path: Path) -> Any:
    try:
        import joblib
    except ImportError:  # joblib comes with scikit-learn; a bare pickle still loads
        with path.open("rb") as file:
            return pickle.load(file)
    return joblib.load(path)
