"""The model repository: versions, the default version, removal with a drain, and
refusals that name the model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from aios.errors import Busy, Conflict, InvalidInput, NotFound
from aios.serving import ModelRepository, ServedModel
from tests.serving.conftest import Artifacts


def test_the_default_version_is_the_highest_unless_one_is_marked(artifacts: Artifacts) -> None:
    repository = ModelRepository()
    for version in ("2", "10", "beta"):
        repository.add(ServedModel("adder", version, "python", artifacts.adder_v1))
    assert repository.versions("adder") == ["beta", "2", "10"]
    assert repository.get("adder").version == "10"
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1, default=True))
    assert repository.get("adder").version == "1"
    assert repository.get("adder", "2").version == "2"


def test_unknown_models_and_versions_are_named(artifacts: Artifacts) -> None:
    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    with pytest.raises(NotFound, match="unknown model 'other'"):
        repository.get("other")
    with pytest.raises(NotFound, match="model 'adder' has no version '3' \\(it has 1\\)"):
        repository.get("adder", "3")


def test_a_version_served_twice_or_a_second_default_is_a_conflict(artifacts: Artifacts) -> None:
    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1, default=True))
    with pytest.raises(Conflict, match="adder:1 is already served"):
        repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    with pytest.raises(Conflict, match="already has a default: 1"):
        repository.add(ServedModel("adder", "2", "python", artifacts.adder_v2, default=True))


def test_a_model_file_that_does_not_load_is_refused_before_serving(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"nope")
    repository = ModelRepository()
    with pytest.raises(InvalidInput, match=r"cannot load onnx model .*broken\.onnx"):
        repository.add(ServedModel("m", "1", "onnx", broken))
    assert repository.models() == []


@pytest.mark.parametrize("name", ["", "a/b", "../x", "white space"])
def test_names_that_cannot_be_a_url_segment_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="model name"):
        ServedModel(name, "1", "onnx", tmp_path)


def test_remove_drains_then_forgets_the_version(artifacts: Artifacts) -> None:
    repository = ModelRepository()
    repository.add(ServedModel("adder", "1", "python", artifacts.adder_v1))
    loaded = repository.add(ServedModel("adder", "2", "python", artifacts.adder_v2))
    ones = {"x": np.ones((1, 1), np.float32)}

    async def scenario() -> list[float]:
        answers = [asyncio.ensure_future(loaded.batcher.submit(ones)) for _ in range(3)]
        await asyncio.sleep(0)
        await repository.remove("adder", "2")
        with pytest.raises(Busy):
            await loaded.batcher.submit(ones)
        return [float(a.result()["y"][0, 0]) for a in answers]

    assert asyncio.run(scenario()) == [3.0, 3.0, 3.0]
    assert repository.versions("adder") == ["1"]
    assert repository.get("adder").version == "1"
    asyncio.run(repository.remove("adder", "1"))
    with pytest.raises(NotFound):
        repository.get("adder")
