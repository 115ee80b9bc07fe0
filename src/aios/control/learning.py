"""Feeding a learning policy (``learned``) on a live cluster: the same
:class:`~aios.scheduler.framework.Learner` the simulator feeds, told about the jobs
that ended well.

At start, and whenever such a policy is switched to, it learns from the most recent
:data:`SEED_JOBS` batch jobs that succeeded (their last attempt's run time times their
GPUs, as the what-if replay counts them); then from each job as it succeeds. A job that
failed or was cancelled says nothing about how long its kind needs. Only ended jobs are
read, so nothing is learned before a job has finished.
"""

from __future__ import annotations

from sqlalchemy import select

from aios.control.codecs import scheduler_job
from aios.scheduler import JobState, Policy
from aios.store import Database, JobRow

__all__ = ["SEED_JOBS", "learn_from_history", "learn_from_job"]

SEED_JOBS = 10_000


def learn_from_job(policy: Policy, row: JobRow, finished_at: float) -> None:
    """Tells ``policy``'s learner, if it has one, that ``row``'s job succeeded at
    ``finished_at`` after its last attempt ran since ``row.started_at``."""
    learner = policy.learner
    if learner is None or row.started_at is None:
        return
    job = scheduler_job(row)
    learner.observe(job, max(finished_at - row.started_at, 0.0) * job.service_units)


def learn_from_history(db: Database, policy: Policy) -> int:
    """Teaches a learner that has learned nothing yet the most recent succeeded batch
    jobs, oldest first; returns how many. Idempotent: a learner that already observed
    something is left alone."""
    learner = policy.learner
    if learner is None or learner.observed:
        return 0
    query = (
        select(JobRow)
        .where(
            JobRow.state == JobState.SUCCEEDED.value,
            JobRow.kind == "batch",
            JobRow.started_at.is_not(None),
            JobRow.finished_at.is_not(None),
        )
        .order_by(JobRow.finished_at.desc())
        .limit(SEED_JOBS)
    )
    with db.sessions() as session:
        rows = list(session.scalars(query))
        for row in reversed(rows):
            assert row.finished_at is not None
            learn_from_job(policy, row, row.finished_at)
    return len(rows)
