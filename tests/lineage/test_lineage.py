"""``aios lineage``: the graph upstream and downstream of a dataset version, a job and a
model version, built from what jobs really read and published."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aios.cli.main import app
from aios.client import ApiError
from aios.lineage.api import TreeView
from tests.cli.cli_harness import PLAIN
from tests.control.control_harness import Running
from tests.registry.artifacts import write_onnx

PREPARE = 'cp "$AIOS_INPUTS"/raw/*.txt "$AIOS_OUTPUTS"/clean/'
COUNT = 'cat "$AIOS_INPUTS"/clean/*.txt | wc -l > "$AIOS_OUTPUTS"/stats/n'


def _links(tree: TreeView) -> list[str]:
    return [f"{t.node.kind}:{t.node.ref}" for t in tree.links]


@pytest.fixture
def chain(data_plane: Running, tmp_path: Path) -> dict[str, int]:
    """raw@1 -> job prepare -> clean@1 -> job count -> stats@1; model m@1 trained by the
    count job on clean@latest (= clean@1)."""
    client = data_plane.admin
    prepare = client.submit(PREPARE, inputs=["raw@1"], outputs=["clean"])
    assert client.wait(prepare.id, timeout=60).state == "succeeded"
    count = client.submit(COUNT, inputs=["clean@latest"], outputs=["stats"])
    assert client.wait(count.id, timeout=60).state == "succeeded"
    model = client.register_model(
        "m", write_onnx(tmp_path / "m.onnx"), "onnx", from_job=count.id, dataset="clean@latest"
    )
    assert model.dataset == "clean@1"  # resolved: a tag or "latest" moves, lineage must not
    return {"prepare": prepare.id, "count": count.id}


def test_a_dataset_version_shows_its_producer_upstream_and_its_readers_downstream(
    data_plane: Running, chain: dict[str, int]
) -> None:
    view = data_plane.admin.lineage("dataset", "clean@1")
    assert view.upstream.node.ref == "clean@1"
    assert _links(view.upstream) == [f"job:{chain['prepare']}"]
    assert _links(view.upstream.links[0]) == ["dataset:raw@1"]
    assert _links(view.downstream) == [f"job:{chain['count']}", "model:m@1"]
    assert _links(view.downstream.links[0]) == ["dataset:stats@1", "model:m@1"]


def test_a_model_version_leads_back_to_the_raw_data(
    data_plane: Running, chain: dict[str, int]
) -> None:
    view = data_plane.admin.lineage("model", "m@1")
    assert _links(view.upstream) == [f"job:{chain['count']}", "dataset:clean@1"]
    job = view.upstream.links[0]
    assert _links(job) == ["dataset:clean@1"]
    clean = job.links[0]
    assert _links(clean) == [f"job:{chain['prepare']}"]
    assert _links(clean.links[0]) == ["dataset:raw@1"]
    assert view.upstream.links[1].seen  # clean@1 again: expanded once, then marked
    assert view.downstream.links == []


def test_a_reused_run_is_a_reader_but_not_the_producer(
    data_plane: Running, chain: dict[str, int]
) -> None:
    again = data_plane.admin.submit(PREPARE, inputs=["raw@1"], outputs=["clean"])
    assert data_plane.admin.wait(again.id, timeout=60).state == "succeeded"
    view = data_plane.admin.lineage("dataset", "clean@1")
    assert _links(view.upstream) == [f"job:{chain['prepare']}"]
    readers = data_plane.admin.lineage("dataset", "raw@1")
    assert _links(readers.downstream) == [f"job:{chain['prepare']}", f"job:{again.id}"]


def test_another_tenant_sees_neither_the_jobs_nor_the_model(
    data_plane: Running, chain: dict[str, int]
) -> None:
    """Olga's queue is given clean (the default queue's) to read: its version shows,
    neither the jobs around it nor the model trained on it."""
    admin = data_plane.admin
    admin.create_queue("other")
    admin.share_dataset("clean", "other", read_only=True)
    token = admin.create_token("olga", tenant="other")
    with data_plane.client(token) as olga:
        view = olga.lineage("dataset", "clean@1")
        assert view.upstream.links == [] and view.downstream.links == []
        with pytest.raises(ApiError) as caught:
            olga.lineage("model", "m@1")
        assert caught.value.status == 404


@pytest.mark.parametrize(
    ("kind", "ref", "status"),
    [("dataset", "nosuch@1", 400), ("job", "abc", 400), ("model", "m", 400), ("job", "999", 404)],
)
def test_bad_references_are_named(
    data_plane: Running, chain: dict[str, int], kind: str, ref: str, status: int
) -> None:
    with pytest.raises(ApiError) as caught:
        data_plane.admin.lineage(kind, ref)  # type: ignore[arg-type]
    assert caught.value.status == status
    assert ref in str(caught.value)


def test_the_cli_prints_both_directions(data_plane: Running, chain: dict[str, int]) -> None:
    env = {**PLAIN, "AIOS_URL": data_plane.url, "AIOS_HOME": str(data_plane.home)}
    result = CliRunner(env=env).invoke(app, ["lineage", "clean@latest"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "dataset clean@1"
    assert any(line.startswith(f"  <- job {chain['prepare']}") for line in lines)
    assert "     <- dataset raw@1" in lines
    assert any(line.startswith(f"  -> job {chain['count']}") for line in lines)
    assert "     -> model m@1  onnx" in lines  # under the count job, which trained it
    assert "  -> model m@1  onnx  (shown above)" in lines
