"""Tenants as the operating system sees them: each queue's Unix user id.

When the control plane runs as root, a job's sandbox runs it as its queue's own uid
(and gid of the same number), as Slurm runs a job as its submitter: one tenant's jobs
cannot read another's files, signal its processes or write what the control plane
owns. The ids come from a range no distribution hands out to its users
(:data:`TENANT_UID_BASE` on), one per queue in the order queues are created, and are
kept on the queue's row so they never change.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aios.store import QueueRow

__all__ = ["TENANT_UID_BASE", "next_uid"]

TENANT_UID_BASE = 200_000
"""The first tenant's uid: above the ids that ``useradd`` gives (1000–60000) and the
nobody of user namespaces (65534)."""


def next_uid(session: Session) -> int:
    """The uid for a queue created in ``session``'s transaction."""
    highest = session.scalar(select(func.max(QueueRow.uid)))
    return TENANT_UID_BASE if highest is None else int(highest) + 1
