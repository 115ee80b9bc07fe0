"""Pipelines: a DAG of steps submitted at once, checked before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from aios.client import ApiError
from aios.control.pipelines import load_pipeline, pipeline_state, topological_order
from aios.errors import InvalidInput
from tests.control.control_harness import Running


def test_a_pipeline_runs_its_steps_in_dependency_order(control: Running, tmp_path: Path) -> None:
    """Each step starts only once the steps it needs have ended (each job sees only its
    own directory, so the order is read from the jobs' times and logs)."""
    path = tmp_path / "pipe.yaml"
    path.write_text(
        """
name: small
steps:
  first:  {command: "echo first", memory: 64M}
  second: {command: "echo second", memory: 64M, needs: [first]}
  third:  {command: "echo third", memory: 64M, needs: [first, second]}
"""
    )
    view = control.admin.submit_pipeline(path)
    assert set(view.steps) == {"first", "second", "third"}
    done = control.admin.wait_pipeline(view.id, timeout=30)
    assert done.state == "succeeded"
    steps = {name: control.admin.get(step.id) for name, step in done.steps.items()}
    for name, step in steps.items():
        assert "".join(control.admin.logs(step.id)) == f"{name}\n"
    first, second, third = steps["first"], steps["second"], steps["third"]
    assert first.finished_at is not None and second.finished_at is not None
    assert second.started_at is not None and second.started_at >= first.finished_at
    assert third.started_at is not None and third.started_at >= second.finished_at
    assert done.steps["third"].after == [done.steps["first"].id, done.steps["second"].id]


def test_a_failed_step_fails_the_pipeline_and_its_dependants(control: Running) -> None:
    spec = {
        "name": "broken",
        "steps": {
            "a": {"command": "exit 1", "memory": "64M"},
            "b": {"command": ["true"], "memory": "64M", "needs": ["a"]},
        },
    }
    from aios.control.specs import PipelineSpec

    view = control.admin.submit_pipeline(PipelineSpec.model_validate(spec))
    done = control.admin.wait_pipeline(view.id, timeout=30)
    assert done.state == "failed"
    assert done.steps["a"].state == "failed"
    assert done.steps["b"].state == "upstream_failed"


def test_a_cyclic_pipeline_is_refused_and_nothing_is_created(control: Running) -> None:
    from aios.control.specs import PipelineSpec

    spec = PipelineSpec.model_validate(
        {
            "name": "loop",
            "steps": {
                "a": {"command": ["true"], "needs": ["b"]},
                "b": {"command": ["true"], "needs": ["a"]},
            },
        }
    )
    with pytest.raises(ApiError) as info:
        control.admin.submit_pipeline(spec)
    assert info.value.status == 400
    assert "cycle" in str(info.value)
    assert control.admin.pipelines() == []
    assert control.admin.jobs() == []


def test_a_pipeline_step_no_node_can_hold_creates_nothing(control: Running) -> None:
    from aios.control.specs import PipelineSpec

    spec = PipelineSpec.model_validate(
        {
            "name": "big",
            "steps": {"a": {"command": ["true"]}, "b": {"command": ["true"], "gpus": 64}},
        }
    )
    with pytest.raises(ApiError) as info:
        control.admin.submit_pipeline(spec)
    assert "steps.b" in str(info.value)
    assert control.admin.jobs() == []


@pytest.mark.parametrize(
    ("needs", "message"),
    [
        ({"a": ["zzz"]}, "no step named 'zzz'"),
        ({"a": ["a"]}, "cannot need itself"),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "cycle among a, b, c"),
    ],
)
def test_bad_dags_are_named(needs: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        topological_order(needs)


def test_topological_order_puts_each_step_after_its_needs() -> None:
    assert topological_order({"c": ["a", "b"], "b": ["a"], "a": []}) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["succeeded", "succeeded"], "succeeded"),
        (["succeeded", "running"], "running"),
        (["failed", "upstream_failed"], "failed"),
        (["failed", "running"], "failing"),
        (["queued", "queued"], "queued"),
        (["cancelled", "succeeded"], "cancelled"),
    ],
)
def test_pipeline_state_follows_its_steps(states: list[str], expected: str) -> None:
    assert pipeline_state(states) == expected


def test_a_pipeline_file_with_a_bad_field_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text('steps:\n  a: {command: ["true"], cpus: lots}\n')
    with pytest.raises(InvalidInput, match=r"bad.yaml: steps.a.cpus"):
        load_pipeline(path)
