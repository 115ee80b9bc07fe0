"""The registry through a real control plane: uploads over HTTP, models loaded by the
serving runtimes in a child process, blobs on disk, versions in SQLite."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from aios.client import ApiError
from aios.control.auth import ADMIN
from aios.errors import InvalidInput
from aios.serving.runtimes import load_runtime
from tests.control.control_harness import Running
from tests.registry.artifacts import iris, write_onnx, write_python_model, write_sklearn


def blob_files(plane: Running) -> set[str]:
    root = plane.home / "registry" / "blobs"
    return {path.name for path in root.rglob("*") if path.is_file()}


def test_a_registered_onnx_model_carries_the_signature_read_from_it(
    plane: Running, tmp_path: Path
) -> None:
    """The version records the model's own inputs and outputs, its digest and size,
    and the metrics, tags and description it was registered with."""
    model = write_onnx(tmp_path / "linear.onnx", features=5, outputs=3)

    version = plane.admin.register_model(
        "linear",
        model,
        "onnx",
        metrics={"rmse": 0.25},
        tags={"team": "vision"},
        description="a linear layer",
    )

    assert (version.name, version.version, version.format) == ("linear", 1, "onnx")
    assert version.signature.model_dump() == {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 5]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}],
    }
    assert version.sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert version.size == model.stat().st_size
    assert (version.filename, version.artifact) == ("linear.onnx", "file")
    assert version.metrics == {"rmse": 0.25}
    assert version.tags == {"team": "vision"}
    assert version.description == "a linear layer"
    assert plane.admin.model_version("linear", "latest") == version


def test_versions_count_up_and_identical_content_is_stored_once(
    plane: Running, tmp_path: Path
) -> None:
    """Two models registered from the same bytes share one blob; each model numbers its
    own versions 1, 2, 3…"""
    first = write_onnx(tmp_path / "a.onnx", seed=1)
    second = write_onnx(tmp_path / "b.onnx", seed=2)
    before = blob_files(plane)

    v1 = plane.admin.register_model("dedup-a", first, "onnx")
    v2 = plane.admin.register_model("dedup-a", second, "onnx")
    again = plane.admin.register_model("dedup-b", first, "onnx")

    assert [v1.version, v2.version, again.version] == [1, 2, 1]
    assert again.sha256 == v1.sha256 != v2.sha256
    assert blob_files(plane) - before == {v1.sha256, v2.sha256}
    assert [v.version for v in plane.admin.model_versions("dedup-a")] == [2, 1]
    model = plane.admin.model("dedup-a")
    assert (model.latest, model.versions, model.owner) == (2, 2, "admin")


def test_registrations_at_once_get_distinct_consecutive_numbers(
    plane: Running, tmp_path: Path
) -> None:
    """Three uploads of one model in parallel become versions 1, 2 and 3."""
    paths = [write_onnx(tmp_path / f"{seed}.onnx", seed=seed) for seed in range(3)]
    with ThreadPoolExecutor(3) as pool:
        versions = list(pool.map(lambda p: plane.admin.register_model("racing", p, "onnx"), paths))

    assert sorted(v.version for v in versions) == [1, 2, 3]
    assert plane.admin.model("racing").latest == 3


def test_a_directory_model_is_stored_as_blobs_and_materialised_read_only(
    plane: Running, tmp_path: Path
) -> None:
    """A Python model directory goes up as a tar archive; the registry's local path holds
    the same files, read-only, and the serving runtime loads and runs it from there."""
    source = write_python_model(tmp_path / "scorer")

    version = plane.admin.register_model("scorer", source, "python")

    assert (version.artifact, version.filename) == ("directory", "scorer")
    assert version.signature.inputs[0].model_dump() == {
        "name": "x",
        "datatype": "FP32",
        "shape": [-1, 3],
    }
    view, path = plane.plane.registry.artifact_path(ADMIN, "scorer", "1")
    assert view == version
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) == [
        "data/weights.npy",
        "model.py",
    ]
    assert (path / "model.py").read_text() == (source / "model.py").read_text()
    assert stat.S_IMODE((path / "model.py").stat().st_mode) == 0o444
    assert stat.S_IMODE(path.stat().st_mode) == 0o555
    runtime = load_runtime("python", path)
    result = runtime.predict({"x": np.array([[1, 1, 1]], np.float32)})
    assert result["y"].tolist() == [6.0]


def test_a_downloaded_directory_equals_the_one_registered(plane: Running, tmp_path: Path) -> None:
    source = write_python_model(tmp_path / "bundle")
    plane.admin.register_model("bundle", source, "python")
    (tmp_path / "out").mkdir()

    path = plane.admin.download_model_artifact("bundle", "latest", tmp_path / "out")

    assert path == tmp_path / "out" / "bundle"
    for name in ("model.py", "data/weights.npy"):
        assert (path / name).read_bytes() == (source / name).read_bytes()


def test_a_downloaded_file_lands_at_the_path_given(plane: Running, tmp_path: Path) -> None:
    model = write_onnx(tmp_path / "m.onnx")
    plane.admin.register_model("fetched", model, "onnx")

    path = plane.admin.download_model_artifact("fetched", 1, tmp_path / "copy.onnx")

    assert path.read_bytes() == model.read_bytes()
    with pytest.raises(InvalidInput, match=r"copy\.onnx: already exists"):
        plane.admin.download_model_artifact("fetched", 1, tmp_path / "copy.onnx")


def test_an_alias_moves_from_one_version_to_another(plane: Running, tmp_path: Path) -> None:
    """``NAME@production`` follows the alias; moving it changes what it resolves to, and
    removing it leaves the version."""
    plane.admin.register_model("moving", write_onnx(tmp_path / "1.onnx", seed=1), "onnx")
    plane.admin.register_model(
        "moving", write_onnx(tmp_path / "2.onnx", seed=2), "onnx", alias="staging"
    )

    plane.admin.set_model_alias("moving", "production", 1)
    assert plane.admin.model_version("moving", "production").version == 1
    assert plane.admin.model_version("moving", "staging").version == 2

    moved = plane.admin.set_model_alias("moving", "production", 2)

    assert moved.aliases == {"production": 2, "staging": 2}
    assert plane.admin.model_version("moving", "production").aliases == ["production", "staging"]
    assert plane.admin.remove_model_alias("moving", "staging").aliases == {"production": 2}
    with pytest.raises(ApiError, match="no alias 'staging'") as missing:
        plane.admin.model_version("moving", "staging")
    assert missing.value.status == 404


@pytest.mark.parametrize(("alias", "status"), [("latest", 400), ("7", 400), ("-x", 422)])
def test_an_alias_that_reads_as_a_version_or_no_name_is_refused(
    plane: Running, tmp_path: Path, alias: str, status: int
) -> None:
    """``NAME@latest`` and ``NAME@7`` already mean versions: neither can be an alias."""
    if "aliased" not in {m.name for m in plane.admin.models()}:
        plane.admin.register_model("aliased", write_onnx(tmp_path / "m.onnx"), "onnx")
    with pytest.raises(ApiError) as refused:
        plane.admin.set_model_alias("aliased", alias, 1)
    assert refused.value.status == status


def test_tags_merge_and_a_null_tag_is_removed(plane: Running, tmp_path: Path) -> None:
    plane.admin.register_model(
        "tagged", write_onnx(tmp_path / "m.onnx"), "onnx", tags={"a": "1", "b": "2"}
    )

    updated = plane.admin.update_model_version(
        "tagged", 1, description="now described", tags={"b": None, "c": "3"}
    )

    assert updated.tags == {"a": "1", "c": "3"}
    assert updated.description == "now described"


def test_lineage_names_a_real_finished_job_and_a_dataset_version(
    plane: Running, tmp_path: Path
) -> None:
    """``from_job`` must be a job the caller can see; the dataset is kept verbatim."""
    job = plane.admin.submit(["true"], memory="64M")
    assert plane.admin.wait(job.id, timeout=30).state == "succeeded"

    version = plane.admin.register_model(
        "traced", write_onnx(tmp_path / "m.onnx"), "onnx", from_job=job.id, dataset="iris@3"
    )

    assert (version.from_job, version.dataset) == (job.id, "iris@3")
    with pytest.raises(ApiError, match="from_job: no job 999999") as unknown:
        plane.admin.register_model("traced", tmp_path / "m.onnx", "onnx", from_job=999999)
    assert unknown.value.status == 400
    with pytest.raises(ApiError, match="dataset") as malformed:
        plane.admin.register_model("traced", tmp_path / "m.onnx", "onnx", dataset="iris")
    assert malformed.value.status == 400
    assert plane.admin.model("traced").versions == 1


def test_to_onnx_stores_an_onnx_model_that_agrees_with_the_scikit_learn_one(
    plane: Running, tmp_path: Path
) -> None:
    """The stored version is ONNX, records its conversion, and gives the labels and
    probabilities the scikit-learn model gives on the iris data."""
    source = write_sklearn(tmp_path / "iris.joblib")

    version = plane.admin.register_model("iris-onnx", source, "sklearn", to_onnx=True)

    assert (version.format, version.filename) == ("onnx", "iris.onnx")
    conversion = version.conversion
    assert conversion is not None
    assert conversion.source_format == "sklearn"
    assert conversion.source_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert conversion.max_difference <= conversion.tolerance
    assert [t.name for t in version.signature.outputs] == ["label", "probabilities"]
    path = plane.admin.download_model_artifact("iris-onnx", 1, tmp_path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    features, _ = iris()
    labels, probabilities = session.run(None, {"input": features})
    original = load_runtime("sklearn", source).predict({"input": features})
    assert np.array_equal(labels, original["label"])
    assert np.allclose(probabilities, original["probabilities"], atol=1e-4)


def test_to_onnx_is_refused_for_a_model_that_is_not_scikit_learn(
    plane: Running, tmp_path: Path
) -> None:
    with pytest.raises(ApiError, match="to_onnx: only a sklearn model") as refused:
        plane.admin.register_model("not-sk", write_onnx(tmp_path / "m.onnx"), "onnx", to_onnx=True)
    assert refused.value.status == 400


def test_a_file_that_does_not_load_is_refused_with_the_reason_and_leaves_nothing(
    plane: Running, tmp_path: Path
) -> None:
    """The loader's own reason comes back as a 400; no model, version or blob is made."""
    garbage = tmp_path / "broken.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    before = blob_files(plane)

    with pytest.raises(ApiError, match=r"^cannot load onnx model broken\.onnx: ") as refused:
        plane.admin.register_model("broken", garbage, "onnx")

    assert refused.value.status == 400
    assert blob_files(plane) == before
    assert "broken" not in {m.name for m in plane.admin.models()}
    assert list((plane.home / "registry" / "tmp").iterdir()) == []


def test_a_pickle_registered_under_the_wrong_format_is_refused(
    plane: Running, tmp_path: Path
) -> None:
    with pytest.raises(ApiError, match=r"cannot load onnx model iris\.joblib") as refused:
        plane.admin.register_model("wrong", write_sklearn(tmp_path / "iris.joblib"), "onnx")
    assert refused.value.status == 400


def test_delete_is_refused_while_a_deployment_or_an_alias_uses_the_version(
    plane: Running, tmp_path: Path, in_use: dict[tuple[str, int], list[str]]
) -> None:
    """A version in use stays (409 naming the deployment); a free one goes with the
    blobs no other version uses, and its number is never given out again."""
    plane.admin.register_model("doomed", write_onnx(tmp_path / "1.onnx", seed=11), "onnx")
    second = plane.admin.register_model(
        "doomed", write_onnx(tmp_path / "2.onnx", seed=12), "onnx", alias="production"
    )
    in_use[("doomed", 1)] = ["web"]

    with pytest.raises(ApiError, match="in use by deployment web") as used:
        plane.admin.delete_model_version("doomed", 1)
    assert used.value.status == 409
    with pytest.raises(ApiError, match="aliased as production") as aliased:
        plane.admin.delete_model_version("doomed", 2)
    assert aliased.value.status == 409

    plane.admin.remove_model_alias("doomed", "production")
    plane.admin.delete_model_version("doomed", 2)

    assert [v.version for v in plane.admin.model_versions("doomed")] == [1]
    assert second.sha256 not in blob_files(plane)
    third = plane.admin.register_model("doomed", tmp_path / "2.onnx", "onnx")
    assert third.version == 3


def test_a_tenant_neither_sees_nor_touches_another_tenants_model(
    plane: Running, tmp_path: Path
) -> None:
    """Tenant red's model is a 404 for tenant blue on every route, and its name is
    not available to blue (409); the admin sees every model."""
    plane.admin.create_queue("red")
    plane.admin.create_queue("blue")
    red = plane.client(plane.admin.create_token("rita", tenant="red"))
    blue = plane.client(plane.admin.create_token("bert", tenant="blue"))
    model = write_onnx(tmp_path / "m.onnx")
    mine = red.register_model("secret", model, "onnx", alias="production")
    assert (mine.tenant, mine.created_by) == ("red", "rita")

    attempts: list[Callable[[], object]] = [
        lambda: blue.model("secret"),
        lambda: blue.model_version("secret", 1),
        lambda: blue.model_versions("secret"),
        lambda: blue.download_model_artifact("secret", 1, tmp_path),
        lambda: blue.set_model_alias("secret", "mine", 1),
        lambda: blue.remove_model_alias("secret", "production"),
        lambda: blue.update_model_version("secret", 1, description="x"),
        lambda: blue.delete_model_version("secret", 1),
    ]
    for attempt in attempts:
        with pytest.raises(ApiError, match="no model 'secret'") as hidden:
            attempt()
        assert hidden.value.status == 404
    with pytest.raises(ApiError) as taken:
        blue.register_model("secret", model, "onnx")
    assert taken.value.status == 409
    with pytest.raises(ApiError) as forbidden:
        blue.register_model("elsewhere", model, "onnx", tenant="red")
    assert forbidden.value.status == 403

    assert "secret" not in {m.name for m in blue.models()}
    assert [m.name for m in red.models()] == ["secret"]
    assert "secret" in {m.name for m in plane.admin.models()}
    red.close()
    blue.close()


def test_a_name_another_tenant_holds_is_refused_as_a_reserved_one_is(
    plane: Running, tmp_path: Path
) -> None:
    """Registering under a name another tenant holds tells a tenant no more than a
    name reserved for the system, which no model holds: the same status and words, at
    the same step (before a job named as lineage is looked up); a name no one holds
    is free."""
    plane.admin.create_queue("crimson")
    plane.admin.create_queue("azure")
    red = plane.client(plane.admin.create_token("rosa", tenant="crimson"))
    blue = plane.client(plane.admin.create_token("bill", tenant="azure"))
    model = write_onnx(tmp_path / "m.onnx")
    red.register_model("held-by-red", model, "onnx")

    def refusal(name: str) -> tuple[int, str]:
        with pytest.raises(ApiError) as refused:
            blue.register_model(name, model, "onnx", from_job=2**31 - 1)
        return refused.value.status, str(refused.value).replace(repr(name), "NAME")

    held, reserved = refusal("held-by-red"), refusal("aios-never-made")
    assert held == reserved == (409, "model name NAME is not available; choose another")
    assert refusal("free-name")[0] == 400  # its from_job is checked, as for any free name
    assert blue.register_model("free-name", model, "onnx").version == 1
    red.close()
    blue.close()
