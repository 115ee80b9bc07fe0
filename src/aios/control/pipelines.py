"""Pipelines: a YAML file of named steps with ``needs:``, checked as a DAG."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aios.control.specs import PipelineSpec
from aios.errors import InvalidInput

__all__ = ["load_pipeline", "pipeline_state", "topological_order"]


def topological_order(needs: Mapping[str, Sequence[str]]) -> list[str]:
    """The steps in an order where each comes after what it needs (ties by name).
    Raises InvalidInput naming an unknown or repeated need, or a cycle."""
    for step, wanted in needs.items():
        seen: set[str] = set()
        for other in wanted:
            if other in seen:
                raise InvalidInput(f"steps.{step}.needs: {other!r} is listed twice")
            seen.add(other)
            if other not in needs:
                raise InvalidInput(f"steps.{step}.needs: no step named {other!r}")
            if other == step:
                raise InvalidInput(f"steps.{step}.needs: a step cannot need itself")
    indegree = {step: len(set(wanted)) for step, wanted in needs.items()}
    children: dict[str, list[str]] = {step: [] for step in needs}
    for step, wanted in needs.items():
        for other in set(wanted):
            children[other].append(step)
    ready = sorted(step for step, count in indegree.items() if count == 0)
    order: list[str] = []
    while ready:
        step = ready.pop(0)
        order.append(step)
        for child in sorted(children[step]):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
        ready.sort()
    if len(order) != len(needs):
        cyclic = sorted(step for step, count in indegree.items() if count > 0)
        raise InvalidInput(f"steps: the needs form a cycle among {', '.join(cyclic)}")
    return order


def pipeline_state(states: Iterable[str]) -> str:
    """A pipeline's state from its steps': failed if any step failed, running while any
    runs, succeeded when all did, cancelled when cancelled, queued otherwise."""
    seen = list(states)
    if any(s in {"failed", "upstream_failed", "unschedulable"} for s in seen):
        return "failed" if all(s not in {"queued", "running"} for s in seen) else "failing"
    if any(s == "running" for s in seen):
        return "running"
    if seen and all(s == "succeeded" for s in seen):
        return "succeeded"
    if any(s == "cancelled" for s in seen):
        return "cancelled" if all(s != "queued" for s in seen) else "cancelling"
    return "queued"


def load_pipeline(path: Path) -> PipelineSpec:
    """Reads a pipeline file::

    name: train
    queue: research          # optional
    steps:
      prepare: {command: [python, prep.py], cpus: 1}
      train:   {command: "python train.py", gpus: 1, needs: [prepare]}
    """
    try:
        data: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a pipeline is a mapping with name and steps")
    data.setdefault("name", path.stem)
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: {where}: {first['msg']}") from None
    topological_order({name: step.needs for name, step in spec.steps.items()})
    return spec
