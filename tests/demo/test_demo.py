"""The main job: `aios demo` runs its pipeline through a real control plane."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

import aios.demo.run as demo
from aios.demo import demo_pipeline
from aios.demo.steps import MODELS


@pytest.mark.slow
def test_the_demo_pipeline_succeeds_and_prints_its_schedule_and_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every step succeeds; the schedule names each step with its queue and cores; the
    four models are scored, the best is named, and the replay's table is printed."""
    monkeypatch.setattr(demo, "REPLAY", "--limit 300 --policy fifo,las")
    out = io.StringIO()
    code = demo.run_demo(Console(file=out, width=200))
    text = out.getvalue()
    assert code == 0, text
    for step in ("prepare", *(f"train-{m}" for m in MODELS), "evaluate", "pick", "replay"):
        assert re.search(rf"│ {re.escape(step)}\s+│ (vision|speech)\s+│ \S+\s+│ \d", text), step
    assert text.count("succeeded") >= 8
    assert re.search(r"best model: (logistic|forest|svm|knn) \(0\.9\d{3}\)", text)
    assert "mean JCT las vs fifo" in text
    assert "digits owned by vision, shared read-only with speech" in text
    assert re.search(r"registered digits@1: \w+ .* on digits@1", text)
    assert "<- dataset digits-raw@1" in text  # the deployed model's lineage, to the raw data
    assert re.search(r"prepare again as job \d+: succeeded .* reused the outputs of job", text)
    assert "no errors found (every byte read)" in text  # the verified backup
    assert "control plane stopped" in text


def test_the_demo_trains_each_model_after_prepare_and_in_two_queues() -> None:
    """Steps hand each other dataset versions (each sees only its own directory): the
    models are published by their training steps and read by the evaluation."""
    spec = demo_pipeline()
    train = [name for name in spec.steps if name.startswith("train-")]
    assert len(train) == len(MODELS)
    assert {spec.steps[name].queue for name in train} == {"vision", "speech"}
    assert all(spec.steps[name].needs == ["prepare"] for name in train)
    assert spec.steps["evaluate"].needs == train
    models = {output for name in train for output in spec.steps[name].outputs}
    assert models == {f"model-{m}" for m in MODELS}
    assert {ref.split("@")[0] for ref in spec.steps["evaluate"].inputs} >= models
    assert all(not step.env for name, step in spec.steps.items() if name != "replay")
