"""The inference server: the Open Inference Protocol (KServe V2) over REST.

- :mod:`~aios.serving.runtimes`: load a model (ONNX, scikit-learn, TorchScript, a Python
  class) as a :class:`Runtime` with a :class:`Signature`.
- :mod:`~aios.serving.tensors`: V2 request and response bodies, JSON and binary.
- :mod:`~aios.serving.batching`: the dynamic batcher of one model version.
- :mod:`~aios.serving.repository`: the model versions one server holds.
- :mod:`~aios.serving.infer`: the ``…/infer`` endpoint, decode → batch → encode.
- :mod:`~aios.serving.protocol`: uvicorn's HTTP protocol with ``…/infer`` answered in
  place, without ASGI.
- :mod:`~aios.serving.server`: the FastAPI app and :func:`serve_models`, what a serving
  replica (``aios serve``) runs.
- :mod:`~aios.serving.secret`: the per-deployment secret a replica asks of every
  request, which its gateway adds.
- :mod:`~aios.serving.command`: ``aios serve`` / ``python -m aios.serving``.

This package is what a replica process runs and nothing else: deployments, the gateway
and the autoscaler are the control plane's (:mod:`aios.deployments`). The names below
are imported on first use, so importing one module (the SDK reading a signature's
types, say) does not load numpy, FastAPI and every runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aios.serving.batching import Batcher, BatchingConfig, BatchRecord
    from aios.serving.repository import LoadedModel, ModelRepository, ServedModel
    from aios.serving.runtimes import (
        ModelFormat,
        Runtime,
        Signature,
        TensorSpec,
        load_runtime,
    )
    from aios.serving.server import create_inference_app, serve_models

_HOMES = {
    "Batcher": "batching",
    "BatchingConfig": "batching",
    "BatchRecord": "batching",
    "LoadedModel": "repository",
    "ModelRepository": "repository",
    "ServedModel": "repository",
    "ModelFormat": "runtimes",
    "Runtime": "runtimes",
    "Signature": "runtimes",
    "TensorSpec": "runtimes",
    "load_runtime": "runtimes",
    "create_inference_app": "server",
    "serve_models": "server",
}

__all__ = [
    "BatchRecord",
    "Batcher",
    "BatchingConfig",
    "LoadedModel",
    "ModelFormat",
    "ModelRepository",
    "Runtime",
    "ServedModel",
    "Signature",
    "TensorSpec",
    "create_inference_app",
    "load_runtime",
    "serve_models",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'aios.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(f"aios.serving.{home}"), name)
