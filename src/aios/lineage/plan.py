"""What a job reads from and writes to the data store, as the job's directory records it.

A job that names dataset inputs or outputs gets a *data plan* in its directory at
submission (``data-plan.json``): the repository, the input references as given
(``digits@3``, ``digits@prod``, ``clean@latest``), the output datasets, whether its
outputs may be reused, and the command it wraps. The stage wrapper
(:mod:`aios.lineage.stage`) runs on the job's node, reads the plan, and writes what it
did to ``data-result.json``: the versions it materialised, the versions it published,
and, when an earlier run's outputs were reused, that run's job id. The control plane
reads the result when the job ends and keeps it as lineage edges.

References are resolved when the job starts, not when it is submitted: a pipeline step
reads ``clean@latest`` that an earlier step of the same pipeline publishes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aios.errors import InvalidInput
from aios.files import write_atomically

FORWARDED = (
    "AIOS_DATA_PASSPHRASE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)
"""What the stage wrapper needs to open the repository as the control plane does. It is
handed to the wrapper alone (the executor's ``supervisor_env``), never to the job: the
wrapper runs outside the job's sandbox, and takes these out of the environment it
passes on."""

__all__ = [
    "INPUTS_DIR",
    "OUTPUTS_DIR",
    "PLAN_FILE",
    "PRIVATE_INPUTS",
    "RESULT_FILE",
    "DataPlan",
    "DataResult",
    "UsedVersion",
    "cache_key",
    "check_inputs",
    "check_outputs",
    "write_json_atomically",
]

PLAN_FILE = "data-plan.json"
RESULT_FILE = "data-result.json"
INPUTS_DIR = "inputs"
OUTPUTS_DIR = "outputs"
PRIVATE_INPUTS = "--private-inputs"
"""The stage wrapper's option for a sandboxed job: its inputs are materialised in its
control directory (``host`` or ``image``: where its sandbox shows them)."""


def check_inputs(refs: Sequence[str]) -> list[str]:
    """The input references, once each parses and no dataset is named twice (each is
    materialised at ``inputs/NAME``)."""
    from aios.data.datasets import parse_version  # the data engine loads on first use

    seen: set[str] = set()
    for ref in refs:
        name, _ = parse_version(ref)
        if name in seen:
            raise InvalidInput(f"inputs: dataset {name!r} is named twice")
        seen.add(name)
    return list(refs)


def check_outputs(names: Sequence[str]) -> list[str]:
    """The output dataset names, once each is valid and none repeats."""
    from aios.data.datasets import check_name

    for name in names:
        check_name(name, "outputs: dataset")
    if len(set(names)) != len(names):
        raise InvalidInput("outputs: a dataset is named twice")
    return list(names)


@dataclass(frozen=True, slots=True)
class DataPlan:
    """The data side of one job (see the module's docstring)."""

    job_id: int
    repo: str
    inputs: list[str]
    outputs: list[str]
    cache: bool
    command: list[str]
    shell: bool
    env: dict[str, str] = field(default_factory=dict)

    def write(self, directory: Path) -> Path:
        return write_json_atomically(directory / PLAN_FILE, asdict(self))

    @classmethod
    def read(cls, path: Path) -> DataPlan:
        data = json.loads(path.read_text())
        return cls(**data)


@dataclass(frozen=True, slots=True)
class UsedVersion:
    """A dataset version a job read or published."""

    dataset: str
    version: int
    snapshot: str

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


@dataclass(frozen=True, slots=True)
class DataResult:
    """What the stage wrapper did: the versions read and published, and the job whose
    outputs were reused instead of running (None when the command ran)."""

    inputs: list[UsedVersion]
    outputs: list[UsedVersion]
    cached_from: int | None = None

    def write(self, directory: Path) -> Path:
        return write_json_atomically(directory / RESULT_FILE, asdict(self))

    @classmethod
    def read(cls, path: Path) -> DataResult:
        data = json.loads(path.read_text())
        return cls(
            inputs=[UsedVersion(**v) for v in data["inputs"]],
            outputs=[UsedVersion(**v) for v in data["outputs"]],
            cached_from=data.get("cached_from"),
        )


def cache_key(plan: DataPlan, inputs: Sequence[UsedVersion]) -> str:
    """What identifies a run for reuse: the command, its shell flag and environment,
    the snapshots of the input versions it resolved to (not the references: ``@latest``
    moves) and the output names."""
    material: Mapping[str, Any] = {
        "command": plan.command,
        "shell": plan.shell,
        "env": sorted(plan.env.items()),
        "inputs": sorted((v.dataset, v.snapshot) for v in inputs),
        "outputs": sorted(plan.outputs),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def write_json_atomically(path: Path, data: Any) -> Path:
    """Writes ``data`` as JSON to ``path``, whole or not at all."""
    return write_atomically(path, json.dumps(data).encode())
