"""The learned policy on a live control plane: the same learner the simulator feeds,
told about each job that succeeds, and taught the history again after a restart."""

from __future__ import annotations

from pathlib import Path

from aios.control import ControlPlane, Settings
from aios.scheduler.learning import ServiceHistory
from tests.control.control_harness import local_node, start_plane, stop_plane


def test_the_live_learner_learns_each_success_and_the_history_after_a_restart(
    tmp_path: Path,
) -> None:
    """Two jobs succeed and one fails under ``learned``: the learner observes the two;
    a control plane started again on the same home learns the same two from its
    database before it schedules anything."""
    home = tmp_path / "home"
    running = start_plane(home, policy="learned")
    try:
        learner = running.plane.reconciler.policy.learner
        assert isinstance(learner, ServiceHistory) and learner.observed == 0
        ok = [running.admin.submit(["true"], cpus=1, name="quick") for _ in range(2)]
        bad = running.admin.submit(["false"], cpus=1, name="quick")
        for job in [*ok, bad]:
            running.admin.wait(job.id, timeout=30)
        assert learner.observed == 2
        # Its (queue, GPUs, name) class and its name's class at every size.
        named = [key for key in learner.classes if "quick" in key]
        assert len(named) == 2
        assert all(len(learner.classes[key].samples) == 2 for key in named)
    finally:
        stop_plane(running)
    again = ControlPlane(Settings(home=home, policy="learned", nodes=[local_node()]))
    again.start_background()
    try:
        relearned = again.reconciler.policy.learner
        assert isinstance(relearned, ServiceHistory) and relearned.observed == 2
    finally:
        again.stop()
