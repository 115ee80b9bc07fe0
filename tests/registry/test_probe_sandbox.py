"""A model's load is a sandboxed job of its uploader's queue: a hostile pickle's
``__reduce__`` runs in that job, not in the control plane — it reaches nothing of the
control plane, forks nothing that outlives it, and holds no API thread."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aios.client import ApiError, Client
from tests.control.control_harness import Running, start_plane, stop_plane
from tests.processes import with_argv


class _Hostile:
    """Pickles as a call of ``os.system(command)``: what a malicious model does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[Running, Client]]:
    running = start_plane(tmp_path / "home")
    if running.plane.sandbox is None:
        stop_plane(running)
        pytest.skip("no sandbox on this machine (bubblewrap is not installed)")
    running.admin.create_queue("alpha")
    tenant = running.client(running.admin.create_token("alice", tenant="alpha"))
    try:
        yield running, tenant
    finally:
        tenant.close()
        stop_plane(running)


def test_a_malicious_pickle_runs_sandboxed_and_leaves_nothing_behind(
    plane: tuple[Running, Client], tmp_path: Path
) -> None:
    running, tenant = plane
    stolen, forked = tmp_path / "stolen", "sleep 23.5"
    model = tmp_path / "model.pkl"
    model.write_bytes(
        pickle.dumps(
            _Hostile(
                f"cat {running.home}/admin.token > {stolen}; "
                f"cat {running.home}/admin.token; env; ({forked} &)"
            )
        )
    )
    started = time.monotonic()
    with pytest.raises(ApiError) as refused:
        tenant.register_model("evil", model, "sklearn")
    took = time.monotonic() - started
    assert refused.value.status == 400  # it is no model: the load says why
    assert took < 20, f"the registration took {took:.1f} s"  # not held by what it forked
    assert not stolen.exists()
    token = (running.home / "admin.token").read_text().strip()
    probes = [j for j in running.admin.jobs() if j.name == "probe-evil"]
    assert [(p.queue, p.owner, p.network) for p in probes] == [("alpha", "alice", "none")]
    log = "".join(running.admin.logs(probes[0].id))
    assert token not in log
    assert "AIOS_DATA_PASSPHRASE" not in log
    assert with_argv(forked.split(" ")) == []
    assert tenant.models() == []


def test_a_load_that_hangs_holds_no_api_thread_and_ends_at_its_limit(
    plane: tuple[Running, Client], tmp_path: Path
) -> None:
    """While a load sleeps, the API answers at once; the load is stopped at its time
    limit and the registration refused, naming it."""
    running, tenant = plane
    running.plane.registry.probe_timeout = 5.0
    model = tmp_path / "slow.pkl"
    model.write_bytes(pickle.dumps(_Hostile("sleep 60")))
    import threading

    outcome: list[BaseException] = []

    def register() -> None:
        try:
            tenant.register_model("slow", model, "sklearn")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=register)
    thread.start()
    deadline = time.monotonic() + 10
    while not [j for j in running.admin.jobs() if j.name == "probe-slow"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for _ in range(50):  # far more requests than the load could leave threads for
        answer = httpx.get(f"{running.url}/api/v1/whoami", headers=tenant._http.headers)
        assert answer.status_code == 200
    assert thread.is_alive()  # all answered while the registration still waits
    thread.join(30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ApiError)
    assert "longer than 5 s" in str(outcome[0])
