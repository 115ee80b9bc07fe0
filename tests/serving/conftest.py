"""Fixtures of the serving tests: model artifacts built once per session, and what the
wire-level tests watch on servers in this process (errors logged, heads parsed)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aios.serving.protocol import InferProtocol
from tests.serving.models import (
    train_logistic,
    train_mlp,
    write_adder,
    write_onnx,
    write_pickle,
    write_scale_graph,
    write_shouter,
)
from tests.serving.wire import SERVER_ERRORS, ServerErrors


@dataclass(frozen=True)
class Artifacts:
    """Model files on disk and the estimators they came from."""

    mlp: Any
    logistic: Any
    mlp_onnx: Path
    zipmap_onnx: Path
    scale_onnx: Path
    logistic_pickle: Path
    adder_v1: Path
    adder_v2: Path
    shouter: Path


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    root = tmp_path_factory.mktemp("models")
    mlp = train_mlp()
    logistic = train_logistic()
    return Artifacts(
        mlp=mlp,
        logistic=logistic,
        mlp_onnx=write_onnx(mlp, root / "mlp.onnx"),
        zipmap_onnx=write_onnx(logistic, root / "zipmap.onnx", zipmap=True),
        scale_onnx=write_scale_graph(root / "scale.onnx"),
        logistic_pickle=write_pickle(logistic, root / "logistic.pkl"),
        adder_v1=write_adder(root / "adder1.py", 1.0),
        adder_v2=write_adder(root / "adder2.py", 2.0),
        shouter=write_shouter(root / "shouter"),
    )


@pytest.fixture
def server_errors() -> Iterator[ServerErrors]:
    """Errors the servers of this process log, from now on: a test waiting on a
    :class:`~tests.serving.wire.Wire` fails with the first one at once."""
    SERVER_ERRORS.messages.clear()
    loggers = [logging.getLogger(name) for name in ("asyncio", "aios.serving")]
    for logger in loggers:
        logger.addHandler(SERVER_ERRORS)
    try:
        yield SERVER_ERRORS
    finally:
        for logger in loggers:
            logger.removeHandler(SERVER_ERRORS)


@pytest.fixture
def parsed_heads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The URL of every request head the parser takes apart, from now on (the servers
    of the test run in this process)."""
    heads: list[bytes] = []
    parse = InferProtocol.on_headers_complete

    def counting(protocol: InferProtocol) -> None:
        heads.append(protocol.url)
        parse(protocol)

    monkeypatch.setattr(InferProtocol, "on_headers_complete", counting)
    return heads
