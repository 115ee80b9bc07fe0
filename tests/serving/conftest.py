"""Fixtures of the serving tests: model artifacts built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serving.models import (
    train_logistic,
    train_mlp,
    write_adder,
    write_onnx,
    write_pickle,
    write_scale_graph,
    write_shouter,
)


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
