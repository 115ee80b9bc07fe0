"""Where the installed uvicorn's protocol lacks a method InferProtocol relies on, the
server falls back to uvicorn's own protocol with every request through ASGI: it says
so once, and answers inference, pipelining and the replica secret the same."""

from __future__ import annotations

import json
import logging

import pytest

from aios.serving import ModelRepository, ServedModel
from aios.serving import protocol as fast_path
from aios.serving.secret import SECRET_HEADER
from aios.serving.server import inference_config
from tests.serving.conftest import Artifacts
from tests.serving.serving_harness import serving
from tests.serving.wire import Wire, get, request

ADDER = "/v2/models/adder/infer"


def adder_body(value: float) -> bytes:
    tensor = {"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [value]}
    return json.dumps({"inputs": [tensor]}).encode()


def test_the_installed_uvicorn_fits_the_fast_path(artifacts: Artifacts) -> None:
    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    config = inference_config(repository)
    assert getattr(config.http, "func", config.http) is fast_path.InferProtocol


def test_a_uvicorn_without_a_hook_serves_inference_through_asgi(
    artifacts: Artifacts, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        fast_path, "UVICORN_HOOKS", (*fast_path.UVICORN_HOOKS, "_a_method_uvicorn_dropped")
    )
    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    with caplog.at_level(logging.WARNING, logger="aios.serving"):
        assert inference_config(repository).http == "httptools"
    assert any("inference goes through ASGI" in r.getMessage() for r in caplog.records)
    with serving(repository, secret="s3cret") as served, Wire(served.address) as wire:
        secret = (f"{SECRET_HEADER}: s3cret",)
        wire.send(
            request("POST", ADDER, adder_body(1.0), secret)
            + get("/v2/health/ready")
            + request("POST", ADDER, adder_body(2.0), secret)
            + request("POST", ADDER, adder_body(3.0))
        )
        first, ready, second, refused = wire.responses(4)
        assert first.status == 200 and first.json()["outputs"][0]["data"] == [2.0]
        assert ready.status == 200
        assert second.status == 200 and second.json()["outputs"][0]["data"] == [3.0]
        assert refused.status == 401
