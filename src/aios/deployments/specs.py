"""What a deployment is, as the API accepts and returns it: pydantic models alone.

The SDK and the CLI import this module, so it imports no server code (no SQLAlchemy, no
FastAPI): the rules that need the database live in :mod:`aios.deployments.ops`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator, model_validator

from aios.control.specs import some_cpu, some_memory
from aios.names import NAME_PART
from aios.registry.specs import check_reference
from aios.schema import Name, Strict

__all__ = [
    "REF",
    "DeploymentSpec",
    "DeploymentView",
    "ReplicaView",
    "TrafficUpdate",
    "VersionWeight",
    "parse_canary",
]

REF = re.compile(rf"^(?P<name>{NAME_PART})(?:@(?P<ref>[A-Za-z0-9_.\-]+))?$")
"""``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""


class DeploymentSpec(Strict):
    """What ``aios deploy`` sends: the model (``NAME@VERSION``, ``NAME@alias`` or
    ``NAME`` for the latest), an optional canary (``NAME@VERSION:PERCENT``), replicas,
    one replica's resources, and where it is scheduled."""

    name: Name | None = Field(None, description="default: the model's name")
    model: str = Field(..., max_length=200)
    canary: str | None = Field(None, max_length=200, description="NAME@VERSION:PERCENT")
    replicas: int | None = Field(None, ge=1, le=64)
    min_replicas: int | None = Field(None, ge=1, le=64)
    max_replicas: int | None = Field(None, ge=1, le=64)
    target_in_flight: float = Field(4.0, gt=0, le=10_000)
    scale_down_delay: float = Field(
        30.0, ge=0, le=86_400, description="seconds of lower load before a replica goes"
    )
    cpus: float | str = 1.0
    memory: int | str = "1G"
    gpus: int = Field(0, ge=0, le=64)
    gpu_kind: Name | None = None
    queue: Name | None = None
    priority: int = Field(0, ge=-1_000_000, le=1_000_000)
    max_batch_size: int = Field(32, ge=1, le=65_536)
    max_queue_delay_ms: float = Field(2.0, ge=0, le=60_000)
    max_queue_size: int = Field(1024, ge=1, le=1_000_000)
    timeout: float = Field(30.0, gt=0, le=3600)
    image: str | None = Field(
        None,
        max_length=512,
        description="an OCI image with AIOS installed for the replicas to run in "
        "(default: the host's root, read-only)",
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        match = REF.match(value)
        if match is None:
            raise ValueError(f"model: {value!r} is not NAME, NAME@VERSION or NAME@ALIAS")
        _check_version(match, "model")
        return value

    @field_validator("canary")
    @classmethod
    def _canary(cls, value: str | None) -> str | None:
        if value is not None:
            parse_canary(value)
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float | str) -> float | str:
        return some_cpu(value, "a replica")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str) -> int | str:
        return some_memory(value, "a replica")

    @model_validator(mode="after")
    def _replicas(self) -> DeploymentSpec:
        if self.replicas is not None and (self.min_replicas or self.max_replicas):
            raise ValueError("give either replicas or min_replicas/max_replicas, not both")
        low, high = self.bounds
        if low > high:
            raise ValueError(f"min_replicas {low} is more than max_replicas {high}")
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        if self.replicas is not None:
            return self.replicas, self.replicas
        low = self.min_replicas or 1
        return low, self.max_replicas or max(low, 1)


def parse_canary(text: str) -> tuple[str, int]:
    """``NAME@VERSION:PERCENT`` → (``NAME@VERSION``, percent)."""
    ref, _, percent = text.rpartition(":")
    match = REF.match(ref)
    if match is None or not percent.isdigit() or not 0 < int(percent) < 100:
        raise ValueError(f"canary: {text!r} is not NAME@VERSION:PERCENT with 0 < PERCENT < 100")
    _check_version(match, "canary")
    return ref, int(percent)


def _check_version(match: re.Match[str], field: str) -> None:
    """A version number past what the registry can hold is refused here: on PostgreSQL
    looking it up would be an error rather than a version that is absent."""
    try:
        check_reference(match["ref"] or "latest")
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


class VersionWeight(Strict):
    model: str
    version: int
    weight: int = Field(..., ge=0, le=100)
    format: str = ""


class TrafficUpdate(Strict):
    """New traffic weights by version number (percentages that add up to 100), e.g.
    ``{"3": 50, "4": 50}``; ``{"3": 100}`` rolls a canary back."""

    weights: dict[str, int]


class ReplicaView(BaseModel):
    job_id: int
    state: str
    generation: int
    ready: bool
    url: str | None
    in_flight: int


class DeploymentView(BaseModel):
    name: str
    tenant: str
    owner: str
    versions: list[VersionWeight]
    min_replicas: int
    max_replicas: int
    desired_replicas: int
    generation: int
    queue: str
    priority: int
    cpus: float
    memory: int
    gpus: int
    replicas: list[ReplicaView]
    message: str
    created_at: float
    updated_at: float
