"""The control plane's side of jobs with dataset inputs and outputs: the plan it writes
at submission (into the job's control directory), the credentials it hands the stage
wrapper, and the lineage edges it records from the wrapper's result when the job ends.
The launch itself is :mod:`aios.control.launching`'s."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from sqlalchemy.orm import Session

from aios.lineage.plan import RESULT_FILE, DataPlan, DataResult
from aios.store.models import JobDatasetRow, JobRow

__all__ = [
    "FORWARDED",
    "data_plan",
    "has_data",
    "inner_command",
    "record_lineage",
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
"""What the stage wrapper needs to open the repository as the control plane does. It is
handed to the wrapper alone (the executor's ``supervisor_env``), never to the job: the
wrapper runs outside the job's sandbox, and takes these out of the environment it
passes on."""


def stage_env() -> dict[str, str]:
    """The control plane's repository passphrase and object-store credentials."""
    return {name: os.environ[name] for name in FORWARDED if name in os.environ}


def record_lineage(session: Session, control: Path, row: JobRow) -> DataResult | None:
    """Adds the edges that the wrapper's result in the job's control directory
    ``control`` names for ``row`` (none when it left no result: it failed before reading
    anything)."""
    path = control / RESULT_FILE
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
