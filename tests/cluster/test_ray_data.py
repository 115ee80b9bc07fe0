"""Dataset inputs and outputs of jobs on Ray nodes, through a shared store on S3 (moto's
server on loopback): the node's stage wrapper reads and publishes with the control
plane's passphrase and credentials, never a copy made by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

from aios.client import Client
from aios.control import ControlPlane, Settings
from aios.data.backend import FsspecBackend
from aios.data.datasets import DataStore
from aios.data.repository import Repository
from tests.cluster.conftest import stop_agents
from tests.control.control_harness import free_port

pytestmark = pytest.mark.slow
PASSPHRASE = "ray data passphrase"
LOCATION = "s3://aios-ray/repo"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AIOS_DATA_PASSPHRASE", PASSPHRASE)
    FsspecBackend(LOCATION).fs.mkdir("aios-ray")
    try:
        yield LOCATION
    finally:
        server.stop()


def test_a_job_on_a_ray_node_reads_and_publishes_through_s3(
    ray_cluster: Cluster, s3: str, tmp_path: Path
) -> None:
    source = tmp_path / "raw"
    source.mkdir()
    (source / "a.txt").write_text("alpha\n")
    with Repository.init(FsspecBackend(s3), PASSPHRASE) as repo:
        DataStore(repo).add("raw", source)
    port = free_port()
    plane = ControlPlane(
        Settings(home=tmp_path / "home", port=port, tick=0.2, ray=ray_cluster.address, data_repo=s3)
    )
    plane.start_background()
    assert plane.admin_token_path is not None
    admin = Client(plane.url, token=Path(plane.admin_token_path).read_text().strip())
    try:
        job = admin.submit(
            'tr a-z A-Z < "$AIOS_INPUTS/raw/a.txt" > "$AIOS_OUTPUTS/upper/a.txt"; '
            'echo "on $AIOS_NODE, passphrase ${AIOS_DATA_PASSPHRASE:-hidden}"',
            inputs=["raw@1"],
            outputs=["upper"],
            env={"HOME": str(tmp_path)},
        )
        done = admin.wait(job.id, timeout=90)
        stderr = "".join(admin.logs(job.id, stream="stderr"))
        assert done.state == "succeeded", (done.message, stderr)
        assert (
            "".join(admin.logs(job.id)).strip() == f"on {done.attempts[0].node}, passphrase hidden"
        )
        assert done.attempts[0].node.startswith("ray-")
        with Repository.open(FsspecBackend(s3), PASSPHRASE) as repo:
            store = DataStore(repo)
            upper = store.version("upper", 1)
            assert upper.lineage["job"] == job.id and upper.lineage["inputs"] == ["raw@1"]
            store.get("upper", 1, tmp_path / "got")
        assert (tmp_path / "got" / "a.txt").read_text() == "ALPHA\n"
        assert [d.node.ref for d in admin.lineage("dataset", "upper@1").upstream.links] == [
            str(job.id)
        ]
    finally:
        admin.close()
        plane.stop()
        stop_agents(plane)
