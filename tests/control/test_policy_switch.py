"""The live policy switch (GET/PUT /api/v1/policy) and the history route's rights."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aios.cli.main import app
from aios.client import ApiError
from aios.control import ControlPlane, Settings
from aios.control.history_api import POLICY_CHANGED, history_router, restore_policy
from aios.errors import InvalidInput
from aios.scheduler import make_policy
from tests.control.control_harness import Running, local_node, start_plane, stop_plane


def with_history_routes(running: Running, configured: str = "drf") -> Running:
    """Mounts the history and policy routes and restores the last switch, as the control
    plane does once ``server.py`` mounts :func:`history_router` and calls
    :func:`restore_policy`; for a plane built without them, the tests do it here."""
    paths = {getattr(route, "path", "") for route in running.plane.app.routes}
    if "/api/v1/policy" not in paths:
        router = history_router(running.plane.ops, configured)
        running.plane.app.include_router(router, prefix="/api/v1")
        restore_policy(running.plane.db, running.plane.reconciler, configured)
    return running


def test_switch_takes_effect_without_a_restart_and_is_an_event(control: Running) -> None:
    """PUT /policy swaps the reconcile loop's policy; the switch is a policy_changed
    event naming both policies, and jobs still run under the new one."""
    with_history_routes(control)
    assert control.admin.policy().policy == "drf"
    view = control.admin.set_policy("fifo+backfill")
    assert (view.policy, view.configured) == ("fifo+backfill", "drf")
    assert control.plane.reconciler.policy.name == "fifo+backfill"
    switches = [e for e in control.admin.events() if e.kind == POLICY_CHANGED]
    assert [e.message for e in switches] == [
        "scheduling policy changed from drf to fifo+backfill by admin"
    ]
    job = control.admin.submit(["true"], cpus=1)
    assert control.admin.wait(job.id, timeout=30).state == "succeeded"


def test_unknown_policy_is_refused_naming_the_choices(control: Running) -> None:
    with_history_routes(control)
    with pytest.raises(ApiError) as refused:
        control.admin.set_policy("lottery")
    assert refused.value.status == 400
    assert (
        "policy: unknown policy 'lottery' (known: drf, fifo, las, learned, priority, sjf)"
        in str(refused.value)
    )
    assert control.admin.policy().policy == "drf"
    assert not [e for e in control.admin.events() if e.kind == POLICY_CHANGED]


def test_the_clairvoyant_bound_is_refused_live(control: Running, tmp_path: Path) -> None:
    """oracle-srtf needs true durations: PUT /policy refuses it with a 400 that says so,
    it is not among the choices, and a control plane configured with it does not start."""
    with_history_routes(control)
    with pytest.raises(ApiError) as refused:
        control.admin.set_policy("oracle-srtf")
    assert refused.value.status == 400
    assert "policy: policy 'oracle-srtf' needs every job's true duration" in str(refused.value)
    assert "oracle-srtf" not in control.admin.policy().choices
    assert control.plane.reconciler.policy.name == "drf"
    with pytest.raises(InvalidInput, match="only a simulation knows"):
        ControlPlane(Settings(home=tmp_path / "home", policy="oracle-srtf", nodes=[local_node()]))
    with pytest.raises(InvalidInput, match="true duration"):
        control.plane.reconciler.set_policy(make_policy("oracle-srtf"))


def test_only_an_admin_switches_the_policy_or_reads_the_history(control: Running) -> None:
    """A tenant may see which policy schedules, but neither change it nor read every
    tenant's history."""
    with_history_routes(control)
    control.admin.create_queue("team")
    with control.client(control.admin.create_token("alice", tenant="team")) as tenant:
        assert tenant.policy().policy == "drf"
        for forbidden in (lambda: tenant.set_policy("las"), tenant.history):
            with pytest.raises(ApiError) as refused:
                forbidden()
            assert refused.value.status == 403
    assert control.admin.policy().policy == "drf"


def test_history_window_must_be_positive(control: Running) -> None:
    with_history_routes(control)
    with pytest.raises(ApiError) as refused:
        control.admin.history(since=0)
    assert refused.value.status == 422
    assert "since" in str(refused.value)


def test_cli_switches_and_shows_the_policy(control: Running) -> None:
    """``aios queue set-policy`` switches, ``aios queue policy`` shows the policy against
    the configured one; an unknown policy is one line on stderr and exit code 2."""
    with_history_routes(control)
    token = str(control.home / "admin.token")

    def aios(*args: str) -> Result:
        return CliRunner().invoke(app, ["--url", control.url, "--token-file", token, *args])

    switched = aios("queue", "set-policy", "las")
    assert (switched.exit_code, switched.stdout) == (0, "scheduling policy las\n")
    shown = aios("queue", "policy")
    assert shown.exit_code == 0
    assert shown.stdout.startswith("scheduling policy las (configured: drf); choices: drf, fifo")
    refused = aios("queue", "set-policy", "lottery")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("aios: error: policy: unknown policy 'lottery'")


def test_a_restart_keeps_the_switch_unless_the_configuration_changed(tmp_path: Path) -> None:
    """At start, the last switch is restored when the plane is configured with the policy
    it was switched from; configured with another policy, that one schedules."""
    home = tmp_path / "home"
    first = with_history_routes(start_plane(home, policy="drf"))
    try:
        first.admin.set_policy("las")
    finally:
        stop_plane(first)
    for configured, restored, scheduling in (("drf", "las", "las"), ("fifo", None, "fifo")):
        plane = ControlPlane(Settings(home=home, policy=configured, nodes=[local_node()]))
        try:
            assert restore_policy(plane.db, plane.reconciler, configured) == restored
            assert plane.reconciler.policy.name == scheduling
        finally:
            plane.stop()
            plane.db.close()
