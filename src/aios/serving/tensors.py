"""The Open Inference Protocol (KServe V2) request and response bodies, as numpy arrays.

A request body is a JSON object, optionally followed by raw tensor bytes (the *binary
tensor data* extension): the ``Inference-Header-Content-Length`` header then gives the
length of the JSON part, and each input that travels as bytes says how many in
``parameters.binary_data_size``, in the order of ``inputs``. ``BYTES`` elements travel
as a 4-byte little-endian length followed by the element's bytes.

:func:`decode_request` turns a body into an :class:`InferRequest` and refuses anything
malformed with :class:`~aios.errors.InvalidInput` naming the tensor and the problem;
:func:`encode_response` does the reverse for the model's outputs, as binary or JSON per
output as the request asked. Unknown request parameters are ignored, as the protocol
says. Bulk numpy conversions only: no per-element Python work except for ``BYTES``.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aios.errors import InvalidInput

__all__ = [
    "DATATYPES",
    "HEADER_LENGTH",
    "EncodedResponse",
    "InferRequest",
    "RequestedOutput",
    "datatype_of",
    "decode_request",
    "encode_response",
    "numpy_dtype",
    "pack_bytes",
    "unpack_bytes",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
"""The HTTP header giving the length of the JSON part of a body with binary tensors."""

DATATYPES: Mapping[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}
"""V2 datatypes and the numpy dtype of their elements (little-endian on the wire)."""

_BY_KIND = {(dtype.kind, dtype.itemsize): name for name, dtype in DATATYPES.items()}
_LENGTH = struct.Struct("<I")


def numpy_dtype(datatype: str, *, tensor: str = "tensor") -> np.dtype[Any]:
    """The numpy dtype of V2 ``datatype``; InvalidInput naming ``tensor`` if unknown."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        known = ", ".join(DATATYPES)
        raise InvalidInput(f"{tensor}: unknown datatype {datatype!r} (known: {known})") from None


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The V2 datatype of numpy ``dtype``: strings and objects are ``BYTES``.

    Raises InvalidInput for a dtype the protocol has no name for (complex numbers)."""
    if dtype.kind in "OSU":
        return "BYTES"
    try:
        return _BY_KIND[dtype.kind, dtype.itemsize]
    except KeyError:
        raise InvalidInput(f"numpy dtype {dtype} has no V2 datatype") from None


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output the request named; ``binary`` None: as ``binary_data_output`` says."""

    name: str
    binary: bool | None = None


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request: input tensors by name, in the request's order."""

    inputs: dict[str, np.ndarray[Any, Any]]
    outputs: tuple[RequestedOutput, ...] | None = None
    binary_output: bool = False
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EncodedResponse:
    """A response body; ``header_length`` is set when binary tensors follow the JSON."""

    body: bytes
    header_length: int | None

    @property
    def content_type(self) -> str:
        return "application/json" if self.header_length is None else "application/octet-stream"


def pack_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """The elements of a ``BYTES`` tensor, each as a 4-byte length and its bytes."""
    parts: list[bytes] = []
    for element in array.ravel(order="C").tolist():
        raw = element.encode() if isinstance(element, str) else bytes(element)
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def unpack_bytes(raw: bytes | memoryview, count: int, *, tensor: str) -> np.ndarray[Any, Any]:
    """``count`` length-prefixed elements from ``raw`` as an object array of ``bytes``."""
    view = memoryview(raw)
    elements: list[bytes] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidInput(f"input {tensor!r}: BYTES data ends inside a length prefix")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise InvalidInput(
                f"input {tensor!r}: BYTES element {len(elements)} needs {length} bytes, "
                f"{len(view) - offset} are left"
            )
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise InvalidInput(
            f"input {tensor!r}: shape has {count} elements but BYTES data has {len(elements)}"
        )
    array = np.empty(count, dtype=np.object_)
    array[:] = elements
    return array


@dataclass(frozen=True, slots=True)
class _BinaryInput:
    """How to read one binary input out of the bytes after the JSON header."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    count: int
    size: int


@dataclass(frozen=True, slots=True)
class _HeaderPlan:
    """A JSON header already parsed and checked, whose inputs are all binary: what is
    left to do for a body that carries it is to cut the bytes into arrays."""

    inputs: tuple[_BinaryInput, ...]
    size: int
    outputs: tuple[RequestedOutput, ...] | None
    binary_output: bool
    id: str | None
    parameters: dict[str, Any]

    def apply(self, binary: memoryview) -> InferRequest | None:
        """The request, or None when ``binary`` does not fit (the slow path names why)."""
        if len(binary) != self.size:
            return None
        inputs: dict[str, np.ndarray[Any, Any]] = {}
        offset = 0
        for spec in self.inputs:
            data = binary[offset : offset + spec.size]
            offset += spec.size
            if spec.dtype.kind == "O":
                array = unpack_bytes(data, spec.count, tensor=spec.name).reshape(spec.shape)
            else:
                array = np.frombuffer(data, dtype=spec.dtype).reshape(spec.shape)
            inputs[spec.name] = array
        return InferRequest(
            inputs, self.outputs, self.binary_output, self.id, dict(self.parameters)
        )


_PLANS: dict[bytes, _HeaderPlan] = {}
"""Plans by the exact bytes of their JSON header. Clients send the same header again
and again (the same tensors, shapes and options), and parsing and checking it costs
more than the rest of decoding: a repeated header is parsed once."""
_PLAN_CACHE_SIZE = 512
_PLAN_HEADER_BYTES = 4096
"""Headers longer than this are not kept (they are rare, and would cost memory)."""


def decode_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Decodes an inference request body; ``header_length`` is the value of
    :data:`HEADER_LENGTH` (None: the whole body is JSON).

    Raises InvalidInput naming the tensor and the problem: malformed JSON, an unknown
    datatype, a shape that does not match the data, binary sizes that do not add up.
    """
    if header_length is not None and 0 <= header_length <= min(len(body), _PLAN_HEADER_BYTES):
        plan = _PLANS.get(body[:header_length])
        if plan is not None:
            request = plan.apply(memoryview(body)[header_length:])
            if request is not None:
                return request
    request, sizes = _decode_in_full(body, header_length)
    if header_length is not None and header_length <= _PLAN_HEADER_BYTES and None not in sizes:
        _remember_plan(body[:header_length], request, sizes)
    return request


def _remember_plan(header: bytes, request: InferRequest, sizes: list[int | None]) -> None:
    """Keeps the plan of ``header``, whose inputs used ``sizes`` bytes of binary data."""
    inputs = tuple(
        _BinaryInput(name, array.dtype, array.shape, array.size, size or 0)
        for (name, array), size in zip(request.inputs.items(), sizes, strict=True)
    )
    if len(_PLANS) >= _PLAN_CACHE_SIZE:
        _PLANS.clear()
    _PLANS[header] = _HeaderPlan(
        inputs,
        sum(spec.size for spec in inputs),
        request.outputs,
        request.binary_output,
        request.id,
        dict(request.parameters),
    )


def _decode_in_full(
    body: bytes, header_length: int | None
) -> tuple[InferRequest, list[int | None]]:
    """Parses and checks the whole body: JSON header, every input, every option. Also
    gives the bytes of binary data each input used (None: it came as JSON data)."""
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        if not 0 <= header_length <= len(body):
            raise InvalidInput(
                f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes"
            )
        header, binary = body[:header_length], memoryview(body)[header_length:]
    try:
        document = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"malformed JSON in the inference request: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput("the inference request must be a JSON object")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("the inference request needs 'inputs', a non-empty list")
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    sizes: list[int | None] = []
    offset = 0
    for index, raw in enumerate(raw_inputs):
        name, array, used = _decode_input(index, raw, binary[offset:])
        if name in inputs:
            raise InvalidInput(f"input {name!r} is given twice")
        inputs[name] = array
        sizes.append(used)
        offset += used or 0
    if offset != len(binary):
        raise InvalidInput(
            f"the body has {len(binary) - offset} bytes of binary data that no input's "
            "binary_data_size accounts for"
        )
    parameters = _mapping(document.get("parameters"), "parameters")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    request = InferRequest(
        inputs=inputs,
        outputs=_requested_outputs(document.get("outputs")),
        binary_output=parameters.get("binary_data_output") is True,
        id=request_id,
        parameters=parameters,
    )
    return request, sizes


def _decode_input(
    index: int, raw: object, binary: memoryview
) -> tuple[str, np.ndarray[Any, Any], int | None]:
    """One input: its name, its array and how many bytes of ``binary`` it used (None:
    it came as JSON data)."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"inputs[{index}] must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{index}] needs a 'name'")
    dtype = numpy_dtype(raw.get("datatype"), tensor=f"input {name!r}")  # type: ignore[arg-type]
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape
    ):
        raise InvalidInput(f"input {name!r}: 'shape' must be a list of non-negative integers")
    count = math.prod(shape)
    parameters = _mapping(raw.get("parameters"), f"input {name!r} parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"input {name!r}: binary_data_size must be a non-negative integer")
        if size > len(binary):
            raise InvalidInput(
                f"input {name!r}: binary_data_size is {size} but only {len(binary)} bytes "
                "of binary data are left in the body"
            )
        data = binary[:size]
        if dtype.kind == "O":
            return name, unpack_bytes(data, count, tensor=name).reshape(shape), size
        if size != count * dtype.itemsize:
            raise InvalidInput(
                f"input {name!r}: shape {shape} needs {count * dtype.itemsize} bytes of "
                f"{raw['datatype']}, binary_data_size is {size}"
            )
        return name, np.frombuffer(data, dtype=dtype).reshape(shape), size
    if "data" not in raw:
        raise InvalidInput(f"input {name!r} has neither 'data' nor binary_data_size")
    return name, _from_json(name, raw["datatype"], dtype, shape, count, raw["data"]), None


def _from_json(
    name: str, datatype: str, dtype: np.dtype[Any], shape: list[int], count: int, data: object
) -> np.ndarray[Any, Any]:
    """JSON ``data`` (nested or flat, row-major) as an array of ``dtype`` and ``shape``."""
    try:
        values = np.asarray(data)
    except ValueError as exc:  # ragged nesting
        raise InvalidInput(f"input {name!r}: data is not a regular array: {exc}") from None
    if values.size != count:
        raise InvalidInput(
            f"input {name!r}: shape {shape} has {count} elements but data has {values.size}"
        )
    if count and not _json_kind_fits(values.dtype, dtype):
        raise InvalidInput(
            f"input {name!r}: data of kind {values.dtype.kind!r} ({values.dtype}) is not {datatype}"
        )
    if dtype.kind == "O":
        flat = [v.encode() if isinstance(v, str) else v for v in values.ravel().tolist()]
        array = np.empty(count, dtype=np.object_)
        array[:] = flat
        return array.reshape(shape)
    if dtype.kind in "iu" and count:
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise InvalidInput(f"input {name!r}: a value is out of range for {datatype}")
    return values.astype(dtype).reshape(shape)


def _json_kind_fits(found: np.dtype[Any], wanted: np.dtype[Any]) -> bool:
    """Whether JSON values that numpy read as ``found`` may become ``wanted``."""
    if wanted.kind == "O":
        return found.kind in "US"
    if wanted.kind == "b":
        return found.kind == "b"
    if wanted.kind in "iu":
        return found.kind in "iu"
    return found.kind in "iuf"


def _mapping(value: object, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


def _requested_outputs(raw: object) -> tuple[RequestedOutput, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidInput("'outputs' must be a list")
    outputs = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"outputs[{index}] must be an object with a 'name'")
        binary = _mapping(item.get("parameters"), f"output {item['name']!r} parameters").get(
            "binary_data"
        )
        outputs.append(RequestedOutput(item["name"], binary if isinstance(binary, bool) else None))
    return tuple(outputs)


def encode_response(
    model_name: str,
    model_version: str,
    outputs: Mapping[str, np.ndarray[Any, Any]],
    *,
    requested: tuple[RequestedOutput, ...] | None = None,
    binary_output: bool = False,
    request_id: str | None = None,
) -> EncodedResponse:
    """The response body for ``outputs``: those ``requested`` (all when None), each as
    binary data or JSON as its request asked, ``binary_output`` deciding by default.

    Raises InvalidInput for a requested output the model does not give, or a ``BYTES``
    output that is not UTF-8 text but was asked for as JSON.
    """
    fast = _encode_binary(model_name, model_version, outputs, requested, binary_output, request_id)
    if fast is not None:
        return fast
    wanted = requested or tuple(RequestedOutput(name) for name in outputs)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    described: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output in wanted:
        array = outputs.get(output.name)
        if array is None:
            raise InvalidInput(
                f"unknown output {output.name!r}; the model gives {', '.join(map(repr, outputs))}"
            )
        datatype = datatype_of(array.dtype)
        entry: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": array.shape}
        if output.binary if output.binary is not None else binary_output:
            raw = pack_bytes(array) if datatype == "BYTES" else _little_endian_bytes(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _json_values(output.name, array)
        described.append(entry)
    document["outputs"] = described
    header = json.dumps(document, separators=(",", ":")).encode()
    if not chunks:
        return EncodedResponse(header, None)
    return EncodedResponse(b"".join([header, *chunks]), len(header))


_HEADERS: dict[tuple[Any, ...], bytes] = {}
"""JSON headers of all-binary responses by what they say: a model answers requests of
the same shape with the same header, which then is written once."""
_HEADER_CACHE_SIZE = 512


def _encode_binary(
    model_name: str,
    model_version: str,
    outputs: Mapping[str, np.ndarray[Any, Any]],
    requested: tuple[RequestedOutput, ...] | None,
    binary_output: bool,
    request_id: str | None,
) -> EncodedResponse | None:
    """The response when every wanted output is a binary numeric tensor, its header
    from the cache; None for anything else (the general path handles and names it)."""
    if requested is None:  # all outputs, as binary_data_output says
        wanted = [(name, binary_output) for name in outputs]
    else:
        wanted = [(o.name, binary_output if o.binary is None else o.binary) for o in requested]
    described = []
    chunks = []
    for name, binary in wanted:
        array = outputs.get(name)
        if array is None or not binary or array.dtype.kind not in _NUMERIC:
            return None
        raw = _little_endian_bytes(array)
        described.append((name, array.dtype.str, array.shape, len(raw)))
        chunks.append(raw)
    key = (model_name, model_version, request_id, *described)
    header = _HEADERS.get(key)
    if header is None:
        document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
        if request_id is not None:
            document["id"] = request_id
        document["outputs"] = [
            {
                "name": name,
                "datatype": datatype_of(np.dtype(dtype)),
                "shape": shape,
                "parameters": {"binary_data_size": size},
            }
            for name, dtype, shape, size in described
        ]
        header = json.dumps(document, separators=(",", ":")).encode()
        if len(_HEADERS) >= _HEADER_CACHE_SIZE:
            _HEADERS.clear()
        _HEADERS[key] = header
    return EncodedResponse(b"".join([header, *chunks]), len(header))


_NUMERIC = frozenset("biuf")


def _little_endian_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """The elements in C order, little-endian (``tobytes`` copies in C order anyway)."""
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()


def _json_values(name: str, array: np.ndarray[Any, Any]) -> list[Any]:
    values: list[Any] = array.ravel(order="C").tolist()
    if array.dtype.kind not in "OS":
        return values
    try:
        return [v.decode() if isinstance(v, bytes) else v for v in values]
    except UnicodeDecodeError:
        raise InvalidInput(
            f"output {name!r} holds bytes that are not UTF-8: ask for it as binary data"
        ) from None
