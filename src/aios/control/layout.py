"""Where a job's files are: its own directory and the control plane's beside it.

A job has two directories. ``jobs/<id>/`` is its own: its working directory, its logs
and checkpoints, bound read-write into its sandbox. ``run/<id>/`` is the control plane's
(mode 0700, never in a sandbox). See :mod:`aios.control.launching` for what goes where.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["FUNCTION_FILE", "RUN_DIR", "control_dir", "job_dir", "log_path", "prepare_workdir"]

FUNCTION_FILE = "function.pkl"
"""A function job's pickled call, in its own directory."""
RUN_DIR = "run"


def job_dir(home: Path, job_id: int) -> Path:
    """The job's own directory: its working directory, bound into its sandbox (see
    :mod:`aios.control.launching`)."""
    return home / "jobs" / str(job_id)


def log_path(home: Path, job_id: int, stream: str, replica: int = 0) -> Path:
    suffix = "" if replica == 0 else f".{replica}"
    return job_dir(home, job_id) / f"{stream}{suffix}.log"


def prepare_workdir(home: Path, job_id: int) -> None:
    """Makes the job's directory and its checkpoint directory, each unless it exists (a
    retry, a function job whose payload was written at submission, a directory made
    ahead by :class:`~aios.control.workdirs.Workdirs`, even at the same moment)."""
    path = os.fspath(job_dir(home, job_id))
    for directory in (path, f"{path}/checkpoint"):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)


def control_dir(home: Path, job_id: int) -> Path:
    """The control plane's directory for the job, out of the job's reach."""
    return home / RUN_DIR / str(job_id)
