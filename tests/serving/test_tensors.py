"""The V2 codec: JSON and binary tensors, BYTES, and the errors that name the tensor.

Binary bodies are made and read by the official tritonclient helpers, so the codec is
checked against the protocol's reference client, not against itself."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from aios.errors import InvalidInput
from aios.serving.tensors import (
    RequestedOutput,
    decode_request,
    encode_response,
    pack_bytes,
    unpack_bytes,
)


def triton_body(*inputs: triton.InferInput, outputs: Any = None) -> tuple[bytes, int | None]:
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    return body, json_size


def triton_input(name: str, array: np.ndarray[Any, Any], binary: bool = True) -> triton.InferInput:
    datatype = "BYTES" if array.dtype == object else triton_dtype(array)
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def triton_dtype(array: np.ndarray[Any, Any]) -> str:
    from tritonclient.utils import np_to_triton_dtype

    name: str = np_to_triton_dtype(array.dtype)
    return name


def test_binary_inputs_from_tritonclient_decode_to_the_same_arrays() -> None:
    """Binary FP32, INT64 and BYTES inputs, as tritonclient sends them by default,
    decode to equal arrays; no outputs named means binary outputs are wanted."""
    features = np.arange(12, dtype=np.float32).reshape(3, 4)
    counts = np.array([[1], [-2], [3]], dtype=np.int64)
    words = np.array([b"a", b"", "héllo".encode()], dtype=object)
    body, size = triton_body(
        triton_input("features", features),
        triton_input("counts", counts),
        triton_input("words", words),
    )
    request = decode_request(body, size)
    np.testing.assert_array_equal(request.inputs["features"], features)
    np.testing.assert_array_equal(request.inputs["counts"], counts)
    assert request.inputs["words"].tolist() == words.tolist()
    assert request.binary_output is True
    assert request.outputs is None


def test_json_inputs_decode_nested_or_flat() -> None:
    """JSON data may be nested or flat (row-major); BYTES come as strings."""
    document = {
        "id": "r1",
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]},
            {"name": "b", "shape": [2, 2], "datatype": "INT8", "data": [1, 2, 3, -4]},
            {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["x", "yz"]},
            {"name": "d", "shape": [1], "datatype": "BOOL", "data": [True]},
        ],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "z"}],
        "parameters": {"some_unknown_parameter": 3},
    }
    request = decode_request(json.dumps(document).encode())
    np.testing.assert_array_equal(request.inputs["a"], [[1, 2], [3, 4.5]])
    assert request.inputs["a"].dtype == np.float32
    np.testing.assert_array_equal(request.inputs["b"], [[1, 2], [3, -4]])
    assert request.inputs["c"].tolist() == [b"x", b"yz"]
    assert request.inputs["d"].dtype == np.bool_
    assert request.id == "r1"
    assert request.outputs == (RequestedOutput("y", True), RequestedOutput("z", None))
    assert request.binary_output is False


def test_bytes_elements_round_trip_with_length_prefixes() -> None:
    """BYTES travel as 4-byte little-endian lengths followed by the bytes."""
    array = np.array([b"ab", b"", b"\x00\xff"], dtype=object)
    packed = pack_bytes(array)
    prefix = struct.Struct("<I").pack
    assert packed == prefix(2) + b"ab" + prefix(0) + prefix(2) + b"\x00\xff"
    assert unpack_bytes(packed, 3, tensor="t").tolist() == array.tolist()


def test_binary_outputs_are_read_back_by_tritonclient() -> None:
    """encode_response's binary outputs parse with tritonclient's own InferResult."""
    outputs: dict[str, np.ndarray[Any, Any]] = {
        "probabilities": np.random.default_rng(0).random((4, 10), dtype=np.float32),
        "label": np.array([3, 1, 4, 1], dtype=np.int64),
        "names": np.array([b"three", b"one", b"four", b"one"], dtype=object),
    }
    encoded = encode_response("m", "1", outputs, binary_output=True, request_id="x")
    assert encoded.header_length is not None
    result = triton.InferResult.from_response_body(
        encoded.body, header_length=encoded.header_length
    )
    for name, array in outputs.items():
        assert result.as_numpy(name).tolist() == array.tolist()
    assert result.get_response()["id"] == "x"


def test_outputs_are_json_or_binary_as_each_was_asked() -> None:
    """Only the requested outputs come back, each in the form its request named."""
    outputs = {"y": np.array([[1.5, 2.0]], dtype=np.float32), "z": np.array([7])}
    encoded = encode_response(
        "m", "2", outputs, requested=(RequestedOutput("z", False), RequestedOutput("y", True))
    )
    assert encoded.header_length is not None
    header = json.loads(encoded.body[: encoded.header_length])
    assert [o["name"] for o in header["outputs"]] == ["z", "y"]
    assert header["outputs"][0]["data"] == [7]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 8}
    assert encoded.body[encoded.header_length :] == outputs["y"].tobytes()
    plain = encode_response("m", "2", {"z": np.array(["ok"])})
    assert plain.header_length is None
    assert json.loads(plain.body)["outputs"][0] == {
        "name": "z",
        "datatype": "BYTES",
        "shape": [1],
        "data": ["ok"],
    }


def test_a_requested_output_the_model_lacks_is_named() -> None:
    with pytest.raises(InvalidInput, match="unknown output 'nope'"):
        encode_response("m", "1", {"y": np.zeros(1)}, requested=(RequestedOutput("nope"),))


FP32_ROW = {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}


def _body(*inputs: dict[str, Any], binary: bytes = b"") -> tuple[bytes, int | None]:
    header = json.dumps({"inputs": list(inputs)}).encode()
    return header + binary, (len(header) if binary else None)


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"{not json", None, "malformed JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b'{"inputs": []}', None, "non-empty list"),
        (_body({**FP32_ROW, "datatype": "FP128"})[0], None, "input 'x': unknown datatype 'FP128'"),
        (_body({**FP32_ROW, "shape": [3, 2]})[0], None, "input 'x': shape \\[3, 2\\] has 6"),
        (_body({**FP32_ROW, "shape": [1, -2]})[0], None, "input 'x': 'shape' must be a list"),
        (_body({**FP32_ROW, "data": ["a", "b"]})[0], None, "input 'x': data of kind 'U'"),
        (_body({**FP32_ROW, "data": [[1.0], [2.0, 3.0]]})[0], None, "input 'x': data is not"),
        (
            _body({"name": "i", "shape": [1], "datatype": "INT8", "data": [300]})[0],
            None,
            "input 'i': a value is out of range for INT8",
        ),
        (
            _body({"name": "i", "shape": [1], "datatype": "INT32", "data": [1.5]})[0],
            None,
            "input 'i': data of kind 'f'",
        ),
        (_body(FP32_ROW, FP32_ROW)[0], None, "input 'x' is given twice"),
        (_body({"shape": [1], "datatype": "FP32", "data": [1]})[0], None, "needs a 'name'"),
        (
            _body({"name": "x", "shape": [1], "datatype": "FP32"})[0],
            None,
            "input 'x' has neither 'data' nor binary_data_size",
        ),
        (*_body(FP32_ROW, binary=b"\x00" * 4), "4 bytes of binary data that no input"),
        (b'{"inputs": []}', 99, "Inference-Header-Content-Length is 99"),
    ],
)
def test_malformed_requests_are_refused_naming_the_problem(
    body: bytes, header_length: int | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_request(body, header_length)


def test_binary_sizes_that_do_not_match_the_shape_are_refused() -> None:
    """A binary tensor whose size is not shape × item size, or longer than the body."""
    short = {
        "name": "x",
        "shape": [2, 2],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 12},
    }
    body, size = _body(short, binary=b"\x00" * 12)
    with pytest.raises(InvalidInput, match=r"input 'x': shape \[2, 2\] needs 16 bytes"):
        decode_request(body, size)
    long = {**short, "parameters": {"binary_data_size": 64}}
    body, size = _body(long, binary=b"\x00" * 16)
    with pytest.raises(InvalidInput, match="binary_data_size is 64 but only 16 bytes"):
        decode_request(body, size)


def test_truncated_bytes_elements_are_refused() -> None:
    raw = struct.pack("<I", 10) + b"abc"
    with pytest.raises(InvalidInput, match="input 't': BYTES element 0 needs 10 bytes"):
        unpack_bytes(raw, 1, tensor="t")
    with pytest.raises(InvalidInput, match="shape has 2 elements but BYTES data has 1"):
        unpack_bytes(struct.pack("<I", 1) + b"a", 2, tensor="t")


def test_a_repeated_header_decodes_each_bodys_own_tensors() -> None:
    """Bodies that share their JSON header (as one client's requests do) are parsed once
    but each gets its own data, and a body whose data does not fit the header it
    shares still gets the full check's error."""
    bodies = [triton_body(triton_input("x", np.full((2, 3), i, np.float32))) for i in range(3)]
    assert len({body[: size or 0] for body, size in bodies}) == 1
    for index, (body, size) in enumerate(bodies):
        request = decode_request(body, size)
        np.testing.assert_array_equal(request.inputs["x"], np.full((2, 3), index, np.float32))
        assert request.binary_output is True
    body, size = bodies[0]
    with pytest.raises(InvalidInput, match="binary_data_size is 24 but only 20 bytes"):
        decode_request(body[:-4], size)
    with pytest.raises(InvalidInput, match="4 bytes of binary data that no input"):
        decode_request(body + b"\x00" * 4, size)


def test_binary_response_headers_follow_each_answers_shape_and_id() -> None:
    """Responses of the same model with other shapes or ids get headers of their own,
    read back correctly by tritonclient."""
    for rows, request_id in ((1, None), (3, None), (3, "r-7"), (1, None)):
        outputs = {"y": np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)}
        encoded = encode_response("m", "1", outputs, binary_output=True, request_id=request_id)
        assert encoded.header_length is not None
        result = triton.InferResult.from_response_body(encoded.body, False, encoded.header_length)
        np.testing.assert_array_equal(result.as_numpy("y"), outputs["y"])
        assert result.get_response().get("id") == request_id
