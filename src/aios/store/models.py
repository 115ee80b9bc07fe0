"""The control plane's persistent state as SQLAlchemy tables.

Jobs, their attempts, queues, users and their tokens, pipelines, the event log, the
model registry's models, versions and aliases, and which tenant each dataset belongs
to and is shared with.
The same models run on SQLite (the embedded default) and PostgreSQL; the schema is
created and upgraded by the Alembic migrations in :mod:`aios.store.migrations`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AttemptRow",
    "Base",
    "DatasetOwnerRow",
    "DatasetShareRow",
    "DeploymentRow",
    "EventRow",
    "JobDatasetRow",
    "JobRow",
    "ModelAliasRow",
    "ModelRow",
    "ModelVersionRow",
    "PipelineRow",
    "QueueRow",
    "ReplicaRow",
    "SecretRow",
    "TokenRow",
    "UserRow",
]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class QueueRow(Base):
    """A tenant's queue: its quota (resource name → amount; None: unlimited), weight,
    cohort and borrowing limits, as the scheduler's ``Queue``."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    nominal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    cohort: Mapped[str | None] = mapped_column(String(64), nullable=True)
    borrowing_limit: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    uid: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    """The Unix user (and group) id the tenant's sandboxed jobs run as when the control
    plane runs as root; given once, when the queue is created."""


class UserRow(Base):
    """Someone who holds tokens: an admin, or a member of one tenant (queue)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class TokenRow(Base):
    """A bearer token of a user, kept as the SHA-256 digest of its text; it stops
    working at ``expires_at`` (None: never) or once revoked. A job's own token is not a
    row (it is derived from the job, see :mod:`aios.control.auth`) unless it was revoked
    before its job ended: then ``job_id`` and ``attempt`` name it and ``token_hash`` is
    None."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    note: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SecretRow(Base):
    """A key of the control plane's own (the one that signs jobs' tokens, the one
    serving replicas check requests with), made at random the first time it is needed
    and kept here so that it outlives a restart, as the processes that hold what it
    signed do."""

    __tablename__ = "control_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class IdempotencyRow(Base):
    """A submission made with an ``Idempotency-Key``: who made it, a digest of what it
    asked, and what it answered, so that the same request again (a client's retry
    after a lost answer) gets the same answer instead of a second job. Kept a day."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request: Mapped[str] = mapped_column(String(64))
    response: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)


class PipelineRow(Base):
    """A DAG of jobs submitted together; each step is a job with ``pipeline_id`` set."""

    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)


class JobRow(Base):
    """A job as submitted, and where it stands.

    ``state`` is one of queued, running, succeeded, failed, cancelled, upstream_failed,
    unschedulable. Resources are per replica: ``cpu`` in millicores, ``memory`` in
    bytes. ``dependencies`` are job ids that must succeed first.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_queue_state", "queue", "state"),
        Index("ix_jobs_pipeline", "pipeline_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(16), default="batch")
    command: Mapped[list[Any]] = mapped_column(JSON)
    shell: Mapped[bool] = mapped_column(Boolean, default=False)
    env: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cpu: Mapped[int] = mapped_column(BigInteger)
    memory: Mapped[int] = mapped_column(BigInteger)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    preemptible: Mapped[bool] = mapped_column(Boolean, default=True)
    restore: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Seconds the job takes to restore after a preemption, as submitted (None: unknown)."""
    checkpoint_every: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Seconds of work between its checkpoints, as submitted (None: unknown; 0: it
    checkpoints when stopped)."""
    dependencies: Mapped[list[Any]] = mapped_column(JSON, default=list)
    time_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    grace: Mapped[float] = mapped_column(Float, default=30.0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts that failed and were retried so far (preemptions do not count)."""
    retry_backoff: Mapped[float] = mapped_column(Float, default=1.0)
    """Seconds before the first retry; each further retry waits twice as long."""
    retry_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """While backing off after a failure: when the job may be scheduled again."""
    pipeline_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipelines.id", ondelete="SET NULL"), nullable=True
    )
    step: Mapped[str | None] = mapped_column(String(128), nullable=True)
    submitted_at: Mapped[float] = mapped_column(Float)
    queued_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attained_service: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    """For a queued job, why it waits; for an ended one, how it ended, in words."""
    inputs: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    """Dataset versions (``NAME@REF``) materialised read-only in the job's directory."""
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    """Datasets the job publishes a new version of when it succeeds."""
    cache: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """Whether a run of the same command on the same input versions may be reused."""
    network: Mapped[str] = mapped_column(String(8), default="host", server_default="host")
    """``host`` (the machine's network) or ``none`` (loopback only) inside the sandbox."""
    image: Mapped[str | None] = mapped_column(String(512), nullable=True)
    """The OCI image (a layout directory or a saved archive) the job runs in; None:
    the host's root, read-only."""
    as_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Whether the job's own token has its (admin) submitter's rights rather than its
    queue's."""
    mounts: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    """Host paths bound read-only into the job's sandbox at the same path: set by the
    control plane itself (a serving replica's model files), never by a request."""


class JobDatasetRow(Base):
    """A dataset version a job read (``role`` "input") or published ("output"): the
    lineage edges between jobs and datasets. ``cached_from`` is, for a job that reused
    an earlier run's outputs, that run's job id."""

    __tablename__ = "job_datasets"
    __table_args__ = (Index("ix_job_datasets_version", "dataset", "version"),)

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[str] = mapped_column(String(64))
    cached_from: Mapped[int | None] = mapped_column(Integer, nullable=True)


class DatasetOwnerRow(Base):
    """The queue (tenant) a dataset of the data repository belongs to: the queue of
    the first job submitted to publish it, or the one an admin assigned. A dataset with
    no row is no tenant's (see :mod:`aios.lineage.access`)."""

    __tablename__ = "dataset_owners"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class DatasetShareRow(Base):
    """Dataset ``name`` shared with the members of ``queue``: to read, and unless
    ``read_only`` also to publish versions of."""

    __tablename__ = "dataset_shares"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)


class AttemptRow(Base):
    """One run of a job: where it ran (one allocation and one process handle per
    replica) and how it ended."""

    __tablename__ = "attempts"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocations: Mapped[list[Any]] = mapped_column(JSON)
    handles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    """How it ended (an ``ExitReason``), or None while it runs."""
    stopping: Mapped[str | None] = mapped_column(String(24), nullable=True)
    """Set when the control plane asked it to stop: cancelled, preempted, time_limit."""
    message: Mapped[str] = mapped_column(Text, default="")


class EventRow(Base):
    """One line of the event log: every state change writes one in its transaction."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_job", "job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[float] = mapped_column(Float)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ModelRow(Base):
    """A registered model: a name unique across the whole registry (so that a
    deployment's ``NAME@VERSION`` names one thing), owned by one tenant, whose members
    see it and act on it. ``last_version`` only grows: a deleted version's number is
    never given to another artifact."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    last_version: Mapped[int] = mapped_column(Integer, default=0)


class ModelVersionRow(Base):
    """One version of a model: its artifact in the blob store (``sha256`` of the file,
    or of a directory's manifest), the signature read from the model, metrics, tags,
    and lineage (the job that produced it, the dataset version it was trained on)."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_sha256", "sha256"),)

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    format: Mapped[str] = mapped_column(String(16))
    artifact: Mapped[str] = mapped_column(String(16))
    """``file``, or ``directory`` (``sha256`` then names its manifest)."""
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    conversion: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    from_job: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    dataset: Mapped[str | None] = mapped_column(String(160), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))


class ModelAliasRow(Base):
    """``NAME@ALIAS`` → a version of the model. Moving an alias updates this one row,
    so every reader sees the old version or the new one; the foreign key keeps an alias
    from pointing at a version that does not exist."""

    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "version"], ["model_versions.model_id", "model_versions.number"]
        ),
    )

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[float] = mapped_column(Float)


class DeploymentRow(Base):
    """A deployment: model versions with traffic weights, served by replica jobs. Its
    ``config`` holds the versions (with their artifact paths), replica bounds and
    resources, queue, priority and batching; ``generation`` grows when the versions
    change, and ``desired`` is the autoscaler's latest answer."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    desired: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class ReplicaRow(Base):
    """A replica job of a deployment, and the model versions it loaded. Kept by the
    deployment's name, not a foreign key: a removed deployment's replicas are stopped
    by the controller after the deployment row is gone."""

    __tablename__ = "deployment_replicas"
    __table_args__ = (Index("ix_deployment_replicas_deployment", "deployment"),)

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)
    serves: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
