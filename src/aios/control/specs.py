"""What the REST API accepts and returns: pydantic models at the edge.

Requests forbid unknown fields and check every quantity, so bad input is refused with
a 422 that names the field before anything reaches the scheduler or the database.
Free-form fields are bounded too: a command and an environment by what ``execve`` can
take at all (an argument or a variable of at most 128 KiB, ``MAX_ARG_STRLEN``), and in
all by :data:`MAX_COMMAND_BYTES` and :data:`MAX_ENV_BYTES`, well inside its 2 MiB; a
function's pickle by the request body's limit (:mod:`aios.control.perimeter`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from aios.errors import InvalidQuantity
from aios.lineage.plan import check_inputs, check_outputs
from aios.names import NAME, NAME_PART
from aios.resources import parse_cpu, parse_duration, parse_memory
from aios.schema import Name, Strict

__all__ = [
    "MAX_ID",
    "NAME",
    "NAME_PART",
    "AttemptView",
    "EventView",
    "JobSpec",
    "JobStateName",
    "JobView",
    "Name",
    "NodeView",
    "PipelineSpec",
    "PipelineStep",
    "PipelineView",
    "QueueSpec",
    "QueueUpdate",
    "QueueView",
    "ReplicaPlace",
    "Strict",
    "TokenListing",
    "TokenSpec",
    "TokenView",
    "WhoAmI",
    "checked_cpu",
    "checked_memory",
    "checked_seconds",
]

MAX_CPUS = 1_000_000  # in millicores: a thousand cores
MAX_MEMORY = 1 << 50  # a pebibyte
MAX_GPUS = 1024
MAX_SECONDS = 365 * 86400.0
MAX_ARG = 128 << 10
"""Bytes of one argument or one ``NAME=value``: Linux's ``MAX_ARG_STRLEN``, past which
``execve`` fails."""
MAX_ARGS = 4096
MAX_COMMAND_BYTES = 256 << 10
MAX_ENV_VARS = 1024
MAX_ENV_BYTES = 256 << 10
"""Bytes of a job's environment as ``execve`` is given it (``NAME=value`` and a NUL
each)."""
MAX_RESOURCES = 64
"""Resources one quota may name (cpu, memory, gpu and custom ones)."""
MAX_ID = 2**31 - 1
"""The largest id a job, pipeline or event can have: their ids are 32-bit integers on
PostgreSQL, where a larger one in a query is an error, not a row that is absent."""
JobStateName = Literal[
    "queued", "running", "succeeded", "failed", "cancelled", "upstream_failed", "unschedulable"
]
"""The states a job is reported in (and may be listed by)."""


def checked_cpu(value: Any) -> int:
    """Cores as millicores, within what a machine can have; a ``ValueError`` otherwise."""
    try:
        cpu = parse_cpu(value)
    except InvalidQuantity as exc:
        raise ValueError(str(exc)) from None
    if cpu > MAX_CPUS:
        raise ValueError(f"{value!r} cores is more than any machine has")
    return cpu


def checked_memory(value: Any) -> int:
    """Memory as bytes, within what a machine can have; a ``ValueError`` otherwise."""
    try:
        memory = parse_memory(value)
    except InvalidQuantity as exc:
        raise ValueError(str(exc)) from None
    if memory > MAX_MEMORY:
        raise ValueError(f"memory {value!r} is more than any machine has")
    return memory


def checked_seconds(value: Any) -> float:
    """A duration (``90``, ``"15m"``) as seconds; a ``ValueError`` otherwise."""
    try:
        seconds = parse_duration(value)
    except InvalidQuantity as exc:
        raise ValueError(str(exc)) from None
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {value!r} is longer than a year")
    return seconds


def some_cpu(value: float | str, who: str) -> float | str:
    """``value`` when it is a positive amount of cpu (ValueError naming ``who`` else)."""
    if checked_cpu(value) <= 0:
        raise ValueError(f"{who} needs some cpu, got {value!r}")
    return value


def some_memory(value: int | str, who: str) -> int | str:
    """``value`` when it is a positive amount of memory (ValueError naming ``who`` else)."""
    if checked_memory(value) <= 0:
        raise ValueError(f"{who} needs some memory, got {value!r}")
    return value


class JobSpec(Strict):
    """A job to submit: a command (argv list, or a shell string) or a pickled Python
    function from the SDK, with what one replica needs."""

    name: str = Field("", max_length=128)
    command: list[str] | str | None = Field(
        None, description="argv list, or a string run by /bin/sh -c"
    )
    function: str | None = Field(
        None, description="base64 cloudpickle of (callable, args, kwargs), from the SDK"
    )
    cpus: float | str = Field(1.0, description="cores: 2, 0.5 or '500m'")
    memory: int | str = Field("1G", description="bytes, or '512M', '4G'")
    gpus: int = Field(0, ge=0, le=MAX_GPUS)
    gpu_kind: str | None = Field(None, pattern=NAME)
    replicas: int = Field(1, ge=1, le=1024)
    priority: int = Field(0, ge=-1_000_000, le=1_000_000)
    queue: Name | None = Field(None, description="default: the caller's tenant")
    after: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=1000
    )
    env: dict[str, str] = Field(default_factory=dict, max_length=MAX_ENV_VARS)
    time_limit: float | str | None = Field(None, description="seconds, or '30m', '1h'")
    grace: float = Field(30.0, ge=0, le=3600)
    retries: int = Field(0, ge=0, le=100)
    retry_backoff: float = Field(1.0, ge=0, le=3600)
    preemptible: bool = True
    restore: float | str | None = Field(
        None,
        description="seconds the job takes to restore from its checkpoint when it runs "
        "again after a preemption: 60, '2m' (unknown when absent)",
    )
    checkpoint_every: float | str | None = Field(
        None,
        description="how much work the job does between checkpoints: '30m'; a preemption "
        "loses the work since the last one (0: it checkpoints when stopped)",
    )
    kind: Literal["batch", "service"] = "batch"
    inputs: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="dataset versions (NAME@REF) materialised read-only at inputs/NAME",
    )
    outputs: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="datasets whose next version is published from outputs/NAME on success",
    )
    cache: bool = Field(
        True, description="reuse the outputs of an earlier run of the same command and inputs"
    )
    network: Literal["host", "none"] = Field(
        "host", description="the machine's network in the job's sandbox, or none (loopback)"
    )
    image: str | None = Field(
        None,
        max_length=512,
        description="an OCI image to run in: a layout directory or a docker/podman save "
        "archive, optionally PATH:TAG (default: the host's root, read-only)",
    )
    as_admin: bool = Field(
        False, description="the job's own token has its (admin) submitter's rights"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # A text column of PostgreSQL cannot hold NUL (SQLite's can): refused on both.
        if "\0" in value:
            raise ValueError("name: contains a NUL byte")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\0" in value):
            raise ValueError("image: must name an image file or directory")
        return value

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: list[str]) -> list[str]:
        return check_inputs(value)

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, value: list[str]) -> list[str]:
        return check_outputs(value)

    # A job of no cores would run unpinned on every core, and one of no memory without
    # a limit, while its queue's quota counted nothing of either.
    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: float | str) -> float | str:
        return some_cpu(value, "a job")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str) -> int | str:
        return some_memory(value, "a job")

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, value: float | str | None) -> float | str | None:
        if value is not None and checked_seconds(value) <= 0:
            raise ValueError("time_limit must be positive")
        return value

    @field_validator("restore", "checkpoint_every")
    @classmethod
    def _cost(cls, value: float | str | None) -> float | str | None:
        if value is not None:
            checked_seconds(value)
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        total = 0
        for key, text in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,255}", key):
                raise ValueError(f"env: {key[:64]!r} is not a valid variable name")
            if "\0" in text:
                raise ValueError(f"env: {key} contains a NUL byte")
            size = _utf8(key) + 1 + _utf8(text) + 1
            if size > MAX_ARG:
                raise ValueError(f"env: {key} is {size} bytes, over the {MAX_ARG} of one variable")
            total += size
        if total > MAX_ENV_BYTES:
            raise ValueError(f"env: {total} bytes in all, over the limit of {MAX_ENV_BYTES}")
        return value

    @model_validator(mode="after")
    def _one_command(self) -> JobSpec:
        if (self.command is None) == (self.function is None):
            raise ValueError("give exactly one of command or function")
        if isinstance(self.command, list):
            if not self.command or not self.command[0]:
                raise ValueError("command: the argv list must name a program")
            if any("\0" in arg for arg in self.command):
                raise ValueError("command: an argument contains a NUL byte")
            _check_argv(self.command)
        elif isinstance(self.command, str):
            if not self.command.strip() or "\0" in self.command:
                raise ValueError("command: the shell string must be non-empty and without NUL")
            if (size := _utf8(self.command) + 1) > MAX_ARG:
                raise ValueError(f"command: the shell string is {size} bytes, over {MAX_ARG}")
        if len(set(self.after)) != len(self.after):
            raise ValueError("after: a dependency is listed twice")
        return self

    @property
    def millicores(self) -> int:
        return checked_cpu(self.cpus)

    @property
    def memory_bytes(self) -> int:
        return checked_memory(self.memory)

    @property
    def time_limit_seconds(self) -> float | None:
        return None if self.time_limit is None else checked_seconds(self.time_limit)

    @property
    def restore_seconds(self) -> float | None:
        return None if self.restore is None else checked_seconds(self.restore)

    @property
    def checkpoint_every_seconds(self) -> float | None:
        return None if self.checkpoint_every is None else checked_seconds(self.checkpoint_every)


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _check_argv(argv: list[str]) -> None:
    """Refuses a command ``execve`` could not run: too many arguments, one too long,
    or too many bytes in all (ValueError naming which)."""
    if len(argv) > MAX_ARGS:
        raise ValueError(f"command: {len(argv)} arguments, over the limit of {MAX_ARGS}")
    total = 0
    for index, arg in enumerate(argv):
        size = _utf8(arg) + 1
        if size > MAX_ARG:
            raise ValueError(f"command: argument {index} is {size} bytes, over {MAX_ARG}")
        total += size
    if total > MAX_COMMAND_BYTES:
        raise ValueError(f"command: {total} bytes in all, over the limit of {MAX_COMMAND_BYTES}")


class ReplicaPlace(BaseModel):
    """Where one replica of an attempt runs or ran: its node and, once launched, the pid
    of its process there (the leader of its process group: signal it to reach them all)."""

    replica: int
    node: str
    pid: int | None = None


class AttemptView(BaseModel):
    number: int
    node: str
    cores: list[list[int]]
    gpus: list[list[int]]
    started_at: float
    finished_at: float | None
    exit_code: int | None
    reason: str | None
    message: str
    replicas: list[ReplicaPlace] = []


class JobView(BaseModel):
    id: int
    name: str
    owner: str
    queue: str
    state: str
    kind: str
    command: list[str]
    shell: bool
    cpus: float
    memory: int
    gpus: int
    gpu_kind: str | None
    replicas: int
    priority: int
    preemptible: bool
    restore: float | None = None
    checkpoint_every: float | None = None
    after: list[int]
    time_limit: float | None
    grace: float
    max_retries: int
    retries: int
    pipeline_id: int | None
    step: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    reason: str | None
    message: str
    stopping: str | None = None
    attempts: list[AttemptView] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    cache: bool = True
    network: str = "host"
    image: str | None = None
    as_admin: bool = False


class EventView(BaseModel):
    id: int
    time: float
    job_id: int | None
    kind: str
    message: str


class QueueSpec(Strict):
    """A queue (tenant): quota per resource (``{"cpu": 8, "memory": "32G", "gpu": 2}``;
    absent: unlimited), weight, cohort and borrowing limits."""

    name: Name
    quota: dict[str, float | str] | None = Field(None, max_length=MAX_RESOURCES)
    weight: float = Field(1.0, gt=0, le=1_000_000)
    cohort: Name | None = None
    borrowing_limit: dict[str, float | str] = Field(default_factory=dict, max_length=MAX_RESOURCES)

    @field_validator("quota", "borrowing_limit")
    @classmethod
    def _amounts(cls, value: dict[str, float | str] | None) -> dict[str, float | str] | None:
        for resource, amount in (value or {}).items():
            resource_amount(resource, amount)
        return value


class QueueUpdate(Strict):
    quota: dict[str, float | str] | None = Field(None, max_length=MAX_RESOURCES)
    weight: float | None = Field(None, gt=0, le=1_000_000)
    cohort: Name | None = None
    borrowing_limit: dict[str, float | str] | None = Field(None, max_length=MAX_RESOURCES)

    @field_validator("quota", "borrowing_limit")
    @classmethod
    def _amounts(cls, value: dict[str, float | str] | None) -> dict[str, float | str] | None:
        for resource, amount in (value or {}).items():
            resource_amount(resource, amount)
        return value


def resource_amount(resource: str, amount: float | str) -> int:
    """The scheduler's integer amount of ``resource`` (cpu in millicores, memory in
    bytes, gpu and custom resources in units) that ``amount`` names."""
    if resource == "cpu":
        return checked_cpu(amount)
    if resource == "memory":
        return checked_memory(amount)
    if not re.fullmatch(NAME, resource):
        raise ValueError(f"{resource!r} is not a resource name")
    if isinstance(amount, str) or amount < 0 or amount != int(amount):
        raise ValueError(f"{resource}: {amount!r} must be a whole, non-negative number")
    return int(amount)


class QueueView(BaseModel):
    name: str
    quota: dict[str, int] | None
    weight: float
    cohort: str | None
    borrowing_limit: dict[str, int]
    usage: dict[str, int]
    pending: int
    running: int


class GpuView(BaseModel):
    index: int
    model: str
    memory: int
    job_id: int | None


class NodeView(BaseModel):
    name: str
    capacity: dict[str, int]
    allocatable: dict[str, int]
    allocated: dict[str, int]
    free: dict[str, int]
    gpus: list[GpuView]
    labels: dict[str, str]


class PipelineStep(JobSpec):
    """A job of a pipeline; ``needs`` names the steps that must succeed first."""

    needs: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=1000)


class PipelineSpec(Strict):
    name: str = Field(pattern=NAME)
    queue: Name | None = None
    steps: dict[Name, PipelineStep] = Field(min_length=1, max_length=1000)


class PipelineView(BaseModel):
    id: int
    name: str
    queue: str
    owner: str
    state: str
    created_at: float
    steps: dict[str, JobView]


class TokenSpec(Strict):
    name: Name
    tenant: Name | None = None
    admin: bool = False
    expires: float | str | None = Field(
        None, description="how long the token works: seconds, or '30d', '12h' (default: ever)"
    )

    @model_validator(mode="after")
    def _tenant_or_admin(self) -> TokenSpec:
        if self.tenant is None and not self.admin:
            raise ValueError("a user belongs to a tenant (queue) unless they are an admin")
        return self

    @field_validator("expires")
    @classmethod
    def _expires(cls, value: float | str | None) -> float | str | None:
        if value is not None and checked_seconds(value) <= 0:
            raise ValueError("expires must be a positive duration")
        return value

    @property
    def expires_seconds(self) -> float | None:
        return None if self.expires is None else checked_seconds(self.expires)


class TokenView(BaseModel):
    name: str
    tenant: str | None
    admin: bool
    token: str
    expires_at: float | None = None


class TokenListing(BaseModel):
    """A token as listed (never its text): a user's (``id``), or a running job's own
    (``job`` and ``attempt``; it ends with the job)."""

    id: int | None
    user: str
    tenant: str | None
    admin: bool
    note: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    job: int | None = None
    attempt: int | None = None


class WhoAmI(BaseModel):
    name: str
    tenant: str | None
    admin: bool
    job: int | None = None
