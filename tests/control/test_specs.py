"""Bounds on the free-form fields of a job: its command and its environment are refused
past what ``execve`` could take, with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aios.control.specs import (
    MAX_ARG,
    MAX_ARGS,
    MAX_ENV_BYTES,
    MAX_ENV_VARS,
    JobSpec,
    PipelineSpec,
    QueueSpec,
)

KIB = 1024


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"command": ["echo"] * (MAX_ARGS + 1)}, f"{MAX_ARGS + 1} arguments"),
        ({"command": ["echo", "x" * MAX_ARG]}, "command: argument 1 is"),
        ({"command": ["echo", *["x" * 100 * KIB] * 3]}, "bytes in all"),
        ({"command": "x" * MAX_ARG}, "command: the shell string is"),
        ({"command": ["true"], "env": {f"V{i}": "" for i in range(MAX_ENV_VARS + 1)}}, "env"),
        ({"command": ["true"], "env": {"BIG": "x" * MAX_ARG}}, "env: BIG is"),
        ({"command": ["true"], "env": {f"V{i}": "x" * 100 * KIB for i in range(3)}}, "in all"),
        ({"command": ["true"], "env": {"V" * 300: "x"}}, "not a valid variable name"),
        ({"command": ["true"], "cpus": float("nan")}, "finite number"),
        ({"command": ["true"], "grace": float("inf")}, "finite number"),
    ],
)
def test_a_job_past_the_bounds_is_refused_naming_the_field(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        JobSpec.model_validate(fields)


def test_a_job_within_the_bounds_is_accepted() -> None:
    spec = JobSpec.model_validate(
        {
            "command": ["echo", "x" * (MAX_ARG - 1)],
            "env": {f"V{i}": "x" * KIB for i in range(MAX_ENV_BYTES // KIB // 2)},
        }
    )
    assert len(spec.env) == MAX_ENV_BYTES // KIB // 2


def test_a_queue_or_pipeline_with_too_many_entries_is_refused() -> None:
    with pytest.raises(ValidationError, match="quota"):
        QueueSpec.model_validate({"name": "q", "quota": {f"r{i}": 1 for i in range(65)}})
    with pytest.raises(ValidationError, match="needs"):
        PipelineSpec.model_validate(
            {"name": "p", "steps": {"a": {"command": ["true"], "needs": ["b"] * 1001}}}
        )


def test_a_job_states_its_preemption_cost_and_the_scheduler_gets_it() -> None:
    """``restore`` and ``checkpoint_every`` are durations kept with the job and handed to
    the scheduler as its PreemptionCost; a job that states neither has none."""
    from aios.control.codecs import preemption_cost
    from aios.scheduler import PreemptionCost
    from aios.store import JobRow

    spec = JobSpec.model_validate(
        {"command": ["train"], "restore": "90s", "checkpoint_every": "15m"}
    )
    assert (spec.restore_seconds, spec.checkpoint_every_seconds) == (90.0, 900.0)
    row = JobRow(restore=spec.restore_seconds, checkpoint_every=spec.checkpoint_every_seconds)
    assert preemption_cost(row) == PreemptionCost(90.0, 900.0)
    assert preemption_cost(JobRow(restore=None, checkpoint_every=0.0)) == PreemptionCost(
        PreemptionCost().restore, None
    )
    assert preemption_cost(JobRow(restore=None, checkpoint_every=None)) is None
    with pytest.raises(ValidationError, match="duration"):
        JobSpec.model_validate({"command": ["train"], "restore": "soon"})
