"""A deployment's replicas answer its gateway only: a process of the machine (another
tenant's job) that calls a replica directly, without the deployment's secret or with
another deployment's, is refused; the gateway's requests carry it. The secret reaches
the replica in its environment, never on a command line, and model code does not find
it; a replica adopted after a control-plane restart keeps answering the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from aios.serving.secret import SECRET_ENV
from tests.control.control_harness import Running, start_plane, stop_plane
from tests.deployments.deploy_harness import replica_secret, restart_plane, undeploy_all
from tests.serving.models import write_env_probe

pytestmark = pytest.mark.slow

BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0]}]}
NOWHERE = [0.0, 0.0, 0.0]
"""The probe model's answer when its code finds the secret in no environment."""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_plane(tmp_path_factory.mktemp("secret") / "home")
    model = write_env_probe(tmp_path_factory.mktemp("probe") / "probe")
    running.admin.register_model("probe", model, "python")
    for name in ("probe-a", "probe-b"):
        running.admin.deploy("probe@1", name=name, cpus=0.25, memory="256M")
    try:
        yield running
    finally:
        undeploy_all(running)
        stop_plane(running)


def _replica_url(plane: Running, name: str) -> str:
    url = plane.admin.wait_deployment(name, ready=1).replicas[0].url
    assert url is not None
    return url


def _through_gateway(plane: Running, name: str) -> httpx.Response:
    token = (plane.home / "admin.token").read_text().strip()
    return httpx.post(
        f"{plane.url}/v2/models/{name}/infer",
        json=BODY,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _direct(url: str, secret: str | None, method: str = "POST", path: str = "") -> httpx.Response:
    headers = {} if secret is None else {"X-AIOS-Replica-Secret": secret}
    target = path or "/v2/models/probe/versions/1/infer"
    body: Any = BODY if method == "POST" else None
    return httpx.request(method, f"{url}{target}", json=body, headers=headers, timeout=30)


def test_a_replica_answers_its_gateway_and_refuses_a_direct_caller(plane: Running) -> None:
    url = _replica_url(plane, "probe-a")
    missing = _direct(url, None)
    assert missing.status_code == 401 and "x-aios-replica-secret" in missing.json()["error"]
    assert _direct(url, "0" * 64).status_code == 403
    for path in ("/v2/models/probe", "/v2", "/metrics"):
        assert _direct(url, None, "GET", path).status_code == 401, path
    assert _direct(url, None, "GET", "/v2/health/ready").status_code == 200

    answer = _through_gateway(plane, "probe-a")
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == NOWHERE  # not in the model's environment
    assert _direct(url, replica_secret(plane, "probe-a")).status_code == 200


def test_one_deployments_secret_does_not_open_another_deployments_replica(
    plane: Running,
) -> None:
    a, b = replica_secret(plane, "probe-a"), replica_secret(plane, "probe-b")
    assert a != b
    url_b = _replica_url(plane, "probe-b")
    assert _direct(url_b, a).status_code == 403
    assert _direct(url_b, b).status_code == 200
    assert _through_gateway(plane, "probe-b").status_code == 200


def test_the_secret_is_in_the_replicas_environment_and_on_no_command_line(
    plane: Running,
) -> None:
    """Handed over in the job's environment (readable by its own user only), and seen
    in no process's ``/proc/PID/cmdline``, which every user can read."""
    view = plane.admin.wait_deployment("probe-a", ready=1)
    secret = replica_secret(plane, "probe-a")
    server = _replica_process(plane.home, view.replicas[0].job_id)
    assert f"{SECRET_ENV}={secret}".encode() in Path(f"/proc/{server.pid}/environ").read_bytes()
    for process in psutil.process_iter(["cmdline"]):
        assert secret not in " ".join(process.info["cmdline"] or []), process


def test_a_replica_adopted_after_a_restart_answers_the_gateway(
    tmp_path: Path,
) -> None:
    """The key the secrets derive from is kept in the database: the control plane that
    adopts a running replica gives the gateway the secret the replica was started with."""
    first = start_plane(tmp_path / "home")
    first.admin.register_model("probe", write_env_probe(tmp_path / "probe"), "python")
    first.admin.deploy("probe@1", name="kept", cpus=0.25, memory="256M")
    replica = first.admin.wait_deployment("kept", ready=1).replicas[0].job_id
    second = restart_plane(first)
    try:
        view = second.admin.wait_deployment("kept", ready=1)
        assert [r.job_id for r in view.replicas] == [replica]
        answer = _through_gateway(second, "kept")
        assert answer.status_code == 200, answer.text
        assert _direct(_replica_url(second, "kept"), None).status_code == 401
    finally:
        undeploy_all(second)
        stop_plane(second)


def _replica_process(home: Path, job_id: int) -> psutil.Process:
    """The server process of a replica job (not the job's shell wrapper, nor the
    sandbox's processes, whose command lines end with the server's)."""
    for process in psutil.process_iter(["cmdline", "cwd"]):
        try:
            cmdline = process.info["cmdline"] or []
            if cmdline[1:3] == ["-m", "aios.serving"] and process.info["cwd"] == str(
                home / "jobs" / str(job_id)
            ):
                return process
        except psutil.Error:
            continue
    raise AssertionError(f"no server process for job {job_id}")
