"""The lineage edges the control plane records for a job with dataset inputs and
outputs, from the stage wrapper's result, when the job ends. What the job is launched
with (the wrapper, its plan and credentials) is :mod:`aios.control.launching`'s."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sqlalchemy.orm import Session

from aios.lineage.plan import RESULT_FILE, DataResult
from aios.store.models import JobDatasetRow, JobRow

__all__ = ["record_lineage"]

log = logging.getLogger("aios.control")


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
