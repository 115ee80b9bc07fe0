"""The runtime contract: what a loaded model offers the server, and the loader registry.

A *runtime* is a loaded model: its :class:`Signature` and a thread-safe ``predict``
from named numpy arrays to named numpy arrays. The server calls ``predict`` from a worker
thread, never on the event loop, one batch at a time per worker.

Formats are plugins: :data:`LOADERS` maps a format name to a function ``(path, options)
-> Runtime``; :func:`load_runtime` looks the format up and turns whatever the loader
raises into one :class:`~aios.errors.InvalidInput` carrying the loader's own reason.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from aios.errors import InvalidInput
from aios.serving.tensors import DATATYPES, datatype_of

__all__ = [
    "LOADERS",
    "Loader",
    "ModelFormat",
    "Runtime",
    "RuntimeOptions",
    "Signature",
    "TensorSpec",
    "load_runtime",
]

ModelFormat = Literal["onnx", "sklearn", "torchscript", "python"]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a model: a V2 datatype and a shape, -1 for a free dim."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.datatype not in DATATYPES:
            raise InvalidInput(f"tensor {self.name!r}: unknown datatype {self.datatype!r}")
        if any(dim < -1 for dim in self.shape):
            raise InvalidInput(f"tensor {self.name!r}: bad shape {list(self.shape)}")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        try:
            return cls(
                str(data["name"]), str(data["datatype"]), tuple(int(d) for d in data["shape"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"bad tensor spec {dict(data)!r}: {exc!r}") from None

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether an array of ``shape`` fits this spec (same rank, fixed dims equal)."""
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )


@dataclass(frozen=True, slots=True)
class Signature:
    """The inputs a model takes and the outputs it gives, in order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    _fitting: set[Hashable] = field(
        default_factory=set, init=False, repr=False, compare=False, hash=False
    )
    """Layouts (names, dtypes, shapes) that :meth:`check_inputs` accepted already:
    clients send the same layout again and again, and checking it again costs a small
    model's request more than looking it up."""

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signature:
        """The signature ``to_json`` wrote; InvalidInput naming what is malformed."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a signature is a mapping with inputs and outputs, got {data!r}")
        try:
            inputs, outputs = data["inputs"], data["outputs"]
        except KeyError as exc:
            raise InvalidInput(f"signature: missing {exc.args[0]!r}") from None
        return cls(
            tuple(TensorSpec.from_json(spec) for spec in inputs),
            tuple(TensorSpec.from_json(spec) for spec in outputs),
        )

    @property
    def batchable(self) -> bool:
        """Whether requests can be stacked along axis 0: every input's first dim is free."""
        return bool(self.inputs) and all(spec.shape and spec.shape[0] == -1 for spec in self.inputs)

    def check_inputs(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> None:
        """Raises InvalidInput naming the tensor when ``inputs`` do not fit: a missing or
        unknown input, a datatype or a shape that differs from the model's."""
        if len(inputs) == 1:
            ((name, array),) = inputs.items()
            layout: Hashable = (name, array.dtype, array.shape)
        else:
            layout = tuple((name, array.dtype, array.shape) for name, array in inputs.items())
        if layout in self._fitting:
            return
        self._check_all(inputs)
        if len(self._fitting) >= _FITTING_KEPT:
            self._fitting.clear()
        self._fitting.add(layout)

    def _check_all(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> None:
        for spec in self.inputs:
            array = inputs.get(spec.name)
            if array is None:
                raise InvalidInput(f"missing input {spec.name!r}; the model takes {self._names()}")
            datatype = datatype_of(array.dtype)
            if datatype != spec.datatype:
                raise InvalidInput(
                    f"input {spec.name!r}: datatype {datatype}, the model takes {spec.datatype}"
                )
            if not spec.accepts(array.shape):
                raise InvalidInput(
                    f"input {spec.name!r}: shape {list(array.shape)}, the model takes "
                    f"{list(spec.shape)} (-1: any size)"
                )
        if len(inputs) != len(self.inputs):
            known = {spec.name for spec in self.inputs}
            extra = next(name for name in inputs if name not in known)
            raise InvalidInput(f"unknown input {extra!r}; the model takes {self._names()}")

    def _names(self) -> str:
        return ", ".join(repr(spec.name) for spec in self.inputs)


_FITTING_KEPT = 1024
"""Layouts a signature remembers at most (one per batch size a client sends, say)."""


class Runtime(Protocol):
    """A loaded model. ``predict`` must be safe to call from a worker thread."""

    signature: Signature

    def predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        """Outputs by name for ``inputs`` that :meth:`Signature.check_inputs` accepted."""
        ...


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How to load: ``gpu`` asks for the GPU where the format can use one; ``threads``
    bounds the runtime's own thread pool (None: its default)."""

    gpu: bool = False
    threads: int | None = None


Loader = Callable[[Path, RuntimeOptions], Runtime]
"""Loads one format: raises anything with a useful message when the file will not do."""

LOADERS: dict[str, Loader] = {}
"""The registered formats; :mod:`aios.serving.runtimes` fills it with the built-in ones."""


def load_runtime(
    fmt: ModelFormat, path: Path, *, gpu: bool = False, threads: int | None = None
) -> Runtime:
    """Loads the model at ``path`` (a file; a directory for ``python``) as ``fmt``.

    Raises InvalidInput("cannot load <fmt> model <path>: <the loader's reason>") when the
    format is unknown or the model does not load.
    """
    loader = LOADERS.get(fmt)
    if loader is None:
        raise InvalidInput(f"unknown model format {fmt!r} (known: {', '.join(sorted(LOADERS))})")
    if not path.exists():
        raise InvalidInput(f"cannot load {fmt} model {path}: no such file or directory")
    try:
        return loader(path, RuntimeOptions(gpu=gpu, threads=threads))
    except InvalidInput as exc:
        message = str(exc)
        if message.startswith("cannot load"):
            raise
        raise InvalidInput(f"cannot load {fmt} model {path}: {message}") from exc
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"cannot load {fmt} model {path}: {reason}") from exc
