"""TorchScript modules, when torch is installed (it is an optional dependency).

TorchScript keeps no dtypes or shapes of its inputs, so the signature travels inside the
artifact: save the module with
``torch.jit.save(module, path, _extra_files={"signature.json": json.dumps(sig.to_json())})``.
The module is called with the inputs in signature order as tensors; a tensor result is
the first output, a tuple gives the outputs in order.
"""

from __future__ import annotations

import importlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from aios.errors import InvalidInput
from aios.serving.runtimes.base import RuntimeOptions, Signature

__all__ = ["SIGNATURE_FILE", "TorchScriptRuntime", "load_torchscript"]

SIGNATURE_FILE = "signature.json"
"""The extra file of a TorchScript archive that holds its :class:`Signature` as JSON."""


class TorchScriptRuntime:
    """A scripted module on the CPU or the first GPU, run under ``torch.inference_mode``."""

    def __init__(self, torch: Any, module: Any, signature: Signature, device: str) -> None:
        self.torch = torch
        self.module = module
        self.signature = signature
        self.device = device
        # A scripted module's state is not guarded against concurrent calls.
        self._lock = threading.Lock()

    def predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        torch = self.torch
        tensors = [
            torch.from_numpy(np.ascontiguousarray(inputs[spec.name])).to(self.device)
            for spec in self.signature.inputs
        ]
        with self._lock, torch.inference_mode():
            result = self.module(*tensors)
        results = result if isinstance(result, tuple | list) else (result,)
        if len(results) != len(self.signature.outputs):
            raise InvalidInput(
                f"the module gave {len(results)} outputs, its signature names "
                f"{len(self.signature.outputs)}"
            )
        return {
            spec.name: value.detach().cpu().numpy()
            for spec, value in zip(self.signature.outputs, results, strict=True)
        }


def load_torchscript(path: Path, options: RuntimeOptions) -> TorchScriptRuntime:
    """A :class:`TorchScriptRuntime` for the archive at ``path``."""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise InvalidInput("torch is not installed") from None
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    device = "cuda" if options.gpu and torch.cuda.is_available() else "cpu"
    extra = {SIGNATURE_FILE: ""}
    module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    module.eval()
    if not extra[SIGNATURE_FILE]:
        raise InvalidInput(
            f"the archive has no {SIGNATURE_FILE}: save it with "
            f"_extra_files={{{SIGNATURE_FILE!r}: json.dumps(signature.to_json())}}"
        )
    signature = Signature.from_json(json.loads(extra[SIGNATURE_FILE]))
    return TorchScriptRuntime(torch, module, signature, device)
