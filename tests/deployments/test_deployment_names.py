"""Deployment names across tenants: another tenant's deployment answers as absent, and
a name it holds is refused in the words of a name reserved for the system.

The deployment controller is stopped: holding a name needs no replica."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.client import ApiError, Client
from tests.control.control_harness import Running, start_plane, stop_plane
from tests.registry.artifacts import write_onnx


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_plane(tmp_path_factory.mktemp("names") / "home")
    running.plane.controller.stop()
    try:
        yield running
    finally:
        for deployment in running.admin.deployments():
            running.admin.undeploy(deployment.name)
        stop_plane(running)


def tenant(plane: Running, queue: str, model: Path) -> Client:
    """A member of a new queue ``queue`` who has registered model ``queue-model``."""
    plane.admin.create_queue(queue)
    client = plane.client(plane.admin.create_token(f"{queue}-user", tenant=queue))
    client.register_model(f"{queue}-model", model, "onnx")
    return client


def test_another_tenants_deployment_answers_as_absent_and_its_name_as_reserved(
    plane: Running, tmp_path: Path
) -> None:
    """To tenant blue, red's deployment is a 404 word for word like a name no one holds
    (get, update, traffic, delete), and creating one under its name is refused exactly
    as a reserved name that no deployment holds is: nothing says that it exists."""
    model = write_onnx(tmp_path / "m.onnx")
    red, blue = tenant(plane, "red", model), tenant(plane, "blue", model)
    red.deploy("red-model@1", name="red-serving", cpus=0.25, memory="64M")

    def answer(call: str, name: str) -> tuple[int, str]:
        with pytest.raises(ApiError) as refused:
            if call == "create":
                blue.deploy("blue-model@1", name=name, cpus=0.25, memory="64M")
            elif call == "get":
                blue.deployment(name)
            elif call == "update":
                blue.update_deployment(name, "blue-model@1", cpus=0.25, memory="64M")
            elif call == "traffic":
                blue.set_traffic(name, {1: 100})
            else:
                blue.undeploy(name)
        return refused.value.status, str(refused.value).replace(repr(name), "NAME")

    for call in ("get", "update", "traffic", "delete"):
        assert answer(call, "red-serving") == answer(call, "no-such") == (404, "no deployment NAME")
    held, reserved = answer("create", "red-serving"), answer("create", "aios-serving")
    assert held == reserved == (409, "deployment name NAME is not available; choose another")
    assert "red-serving" not in {d.name for d in blue.deployments()}
    assert red.deployment("red-serving").tenant == "red"  # untouched

    # Its own deployment is reported as existing: the caller sees it anyway.
    blue.deploy("blue-model@1", name="blue-serving", cpus=0.25, memory="64M")
    mine = answer("create", "blue-serving")
    assert mine[0] == 409 and "exists already" in mine[1]
    red.close()
    blue.close()
