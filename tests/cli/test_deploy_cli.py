"""``aios deploy``, ``deployments``, ``traffic`` and ``undeploy`` against a real control
plane: a deployment made from the CLI answers through the gateway."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.cli_harness import Cluster, eventually, one_error_line, row_of
from tests.registry.artifacts import write_sklearn

pytestmark = pytest.mark.slow

REQUEST = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5, 3, 1, 0]}]}


@pytest.fixture(scope="module")
def registered(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    models = tmp_path_factory.mktemp("models")
    for version in (1, 2):
        cluster.admin.register_model(
            "flowers", write_sklearn(models / f"f{version}.pkl"), "sklearn", to_onnx=True
        )
    return cluster


def _infer(cluster: Cluster) -> dict[str, object]:
    token = (Path(cluster.home) / "admin.token").read_text().strip()
    response = httpx.post(
        f"{cluster.url}/v2/models/flowers/infer",
        json=REQUEST,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_deploy_serves_then_traffic_moves_and_undeploy_stops(registered: Cluster) -> None:
    cluster = registered
    deployed = cluster.aios(
        "deploy", "flowers@1", "--canary", "flowers@2:20", "--cpus", "0.25", "--memory", "256M"
    )
    assert deployed.exit_code == 0, deployed.stderr
    assert "flowers@1 80%, flowers@2 20%" in deployed.stdout
    assert f"{cluster.url}/v2/models/flowers/infer" in deployed.stdout
    assert _infer(cluster)["model_name"] == "flowers"

    listed = cluster.aios("deployments")
    assert listed.exit_code == 0, listed.stderr
    row = row_of(listed.stdout, "flowers")
    assert row[1] == "flowers@1 80%, flowers@2 20%"
    assert row[2].startswith("1/1")

    moved = cluster.aios("traffic", "flowers", "2=100")
    assert moved.exit_code == 0, moved.stderr
    assert {str(_infer(cluster)["model_version"]) for _ in range(10)} == {"2"}

    removed = cluster.aios("undeploy", "flowers")
    assert removed.exit_code == 0, removed.stderr
    eventually(
        lambda: not cluster.admin.jobs(state="running") and not cluster.admin.deployments(),
        "undeployed",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deploy", "flowers@9", "--no-wait"), "9"),
        (("deploy", "flowers@1", "--replicas", "2", "--max", "3"), "either --replicas"),
        (("deploy", "flowers@1", "--canary", "flowers@2:x"), "canary"),
        (("traffic", "nosuch", "1=100"), "nosuch"),
        (("traffic", "flowers", "one=100"), "VERSION=PERCENT"),
        (("undeploy", "nosuch"), "nosuch"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    registered: Cluster, args: tuple[str, ...], message: str
) -> None:
    result = registered.aios(*args)
    assert result.exit_code == 2, result.stdout
    assert message in one_error_line(result)
