"""Persistent state of the control plane: SQLAlchemy models and the database."""

from aios.store.database import Database, sqlite_url
from aios.store.models import (
    AttemptRow,
    Base,
    EventRow,
    IdempotencyRow,
    JobRow,
    PipelineRow,
    QueueRow,
    SecretRow,
    TokenRow,
    UserRow,
)

__all__ = [
    "AttemptRow",
    "Base",
    "Database",
    "EventRow",
    "IdempotencyRow",
    "JobRow",
    "PipelineRow",
    "QueueRow",
    "SecretRow",
    "TokenRow",
    "UserRow",
    "sqlite_url",
]
