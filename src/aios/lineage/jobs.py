"""The control plane's side of jobs with dataset inputs and outputs: the plan it writes
at submission, the command it launches (the stage wrapper around the job's own), and
the lineage edges it records from the wrapper's result when the job ends."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from sqlalchemy.orm import Session

from aios.lineage.plan import PLAN_FILE, RESULT_FILE, DataPlan, DataResult
from aios.store.models import JobDatasetRow, JobRow

__all__ = [
    "data_plan",
    "has_data",
    "inner_command",
    "record_lineage",
    "stage_command",
    "stage_env",
]

log = logging.getLogger("aios.control")
FUNCTION_RUNNER = ["-m", "aios.control.function"]


def has_data(row: JobRow) -> bool:
    """Whether the job reads or publishes datasets (and so runs under the wrapper)."""
    return bool(row.inputs or row.outputs)


def inner_command(row: JobRow, function_file: str) -> list[str]:
    """The job's own argv: its command, or the runner of its pickled function."""
    if row.command:
        return [str(arg) for arg in row.command]
    return [sys.executable, *FUNCTION_RUNNER, function_file]


def data_plan(row: JobRow, location: str) -> DataPlan:
    """The plan the wrapper of ``row`` follows (see :mod:`aios.lineage.plan`)."""
    from aios.control.records import FUNCTION_FILE

    return DataPlan(
        job_id=row.id,
        repo=location,
        inputs=[str(ref) for ref in row.inputs],
        outputs=[str(name) for name in row.outputs],
        cache=row.cache,
        command=inner_command(row, FUNCTION_FILE),
        shell=row.shell,
        env={str(k): str(v) for k, v in (row.env or {}).items()},
    )


FORWARDED = (
    "AIOS_DATA_PASSPHRASE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)
"""What the stage wrapper needs to open the repository as the control plane does: a
replica on another machine (a Ray node) does not inherit the control plane's
environment. The wrapper takes the passphrase out before the command runs."""


def stage_env() -> dict[str, str]:
    """The control plane's repository passphrase and object-store credentials."""
    return {name: os.environ[name] for name in FORWARDED if name in os.environ}


def stage_command() -> list[str]:
    """The argv that runs a job under the stage wrapper, in the job's directory (the
    plan's path is relative: on a Ray node the directory is another one)."""
    return [sys.executable, "-m", "aios.lineage.stage", PLAN_FILE]


def record_lineage(session: Session, workdir: Path, row: JobRow) -> DataResult | None:
    """Adds the edges that the wrapper's result in ``workdir`` names for ``row`` (none
    when it left no result: it failed before reading anything)."""
    path = workdir / RESULT_FILE
    try:
        result = DataResult.read(path)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        log.warning("job %s: unreadable %s: %s", row.id, path, exc)
        return None
    for role, used in (("input", result.inputs), ("output", result.outputs)):
        for version in used:
            session.merge(
                JobDatasetRow(
                    job_id=row.id,
                    role=role,
                    dataset=version.dataset,
                    version=version.version,
                    snapshot=version.snapshot,
                    cached_from=result.cached_from if role == "output" else None,
                )
            )
    return result
