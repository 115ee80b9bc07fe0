"""ONNX models through onnxruntime: the CUDA provider first when asked and present.

The signature is read from the session: ORT element types become V2 datatypes and a
symbolic or unknown dimension becomes -1. Outputs that are not tensors (the
``ZipMap`` dictionaries skl2onnx adds to classifiers by default) cannot travel over V2,
so such a model is refused with the reason and the cure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from aios.errors import InvalidInput
from aios.serving.runtimes.base import RuntimeOptions, Signature, TensorSpec

__all__ = ["OnnxRuntime", "load_onnx"]

ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
"""onnxruntime's ``NodeArg.type`` strings and the V2 datatypes they carry."""


def _spec(arg: Any, role: str) -> TensorSpec:
    datatype = ORT_TYPES.get(arg.type)
    if datatype is None:
        cure = " (convert with skl2onnx's option zipmap=False)" if "map" in arg.type else ""
        raise InvalidInput(f"{role} {arg.name!r} is {arg.type}, not a V2 tensor{cure}")
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape or ())
    return TensorSpec(arg.name, datatype, shape)


class OnnxRuntime:
    """An onnxruntime ``InferenceSession``; ``session.run`` is thread-safe and releases
    the GIL, so batches may run while the event loop serves other requests."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.signature = Signature(
            tuple(_spec(arg, "input") for arg in session.get_inputs()),
            tuple(_spec(arg, "output") for arg in session.get_outputs()),
        )
        self._output_names = [spec.name for spec in self.signature.outputs]
        self._strings = {spec.name for spec in self.signature.inputs if spec.datatype == "BYTES"}

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really uses, best first."""
        providers: list[str] = self.session.get_providers()
        return providers

    def predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        feed = inputs
        if self._strings:
            # V2 BYTES arrive as bytes; ORT's string tensors take str.
            feed = dict(inputs)
            for name in self._strings:
                feed[name] = np.vectorize(_text, otypes=[object])(inputs[name])
        results = self.session.run(self._output_names, feed)
        return dict(zip(self._output_names, results, strict=True))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_onnx(path: Path, options: RuntimeOptions) -> OnnxRuntime:
    """An :class:`OnnxRuntime` for the ``.onnx`` file at ``path``."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if options.gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session_options = ort.SessionOptions()
    # Left to itself, onnxruntime starts one thread per physical core of the machine and
    # pins each to its own core, whatever cores this process was given: a replica pinned
    # to one core then runs the model on another job's core. Its threads also spin between
    # batches, taking the core from the event loop that has the next requests to read.
    session_options.intra_op_num_threads = options.threads or len(os.sched_getaffinity(0))
    session_options.inter_op_num_threads = 1
    session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), session_options, providers=providers)
    except Exception as exc:
        # ORT prefixes its reasons with "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : …".
        reason = str(exc).rsplit(" : ", 1)[-1].strip()
        raise InvalidInput(reason or type(exc).__name__) from exc
    return OnnxRuntime(session)
