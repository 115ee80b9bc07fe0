"""What a bound replica is launched with: its command (inside the stage wrapper when it
reads or publishes datasets), its directories, its sandbox, and its environment — the
job's own variables, the control plane's address and the job's own token.

A job has two directories. ``jobs/<id>/`` is its own: its working directory, its logs
and checkpoints, bound read-write into its sandbox, where it may leave anything under
any name. ``run/<id>/`` is the control plane's (mode 0700, never in a sandbox): the
wrapper's exit records, the data plan the stage wrapper follows, what it did, and the
credentials it opens the repository with, and in a sandbox the job's dataset inputs
(bound read-only into it from there). Nothing the control plane trusts is read from the
first, and nothing it writes or binds with its own rights goes through a path the job
could have replaced with a link.

The job's environment is what its submitter gave, then (over it) ``AIOS_URL`` and
``AIOS_TOKEN`` — a token of its own, with its queue's rights (see
:mod:`aios.control.auth`) — and for a job with datasets ``AIOS_INPUTS`` and
``AIOS_OUTPUTS``; the executor adds its allocation's variables. The repository's
passphrase and object-store credentials go to the stage wrapper only
(``supervisor_env``), never into the job's environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aios.control.layout import FUNCTION_FILE, control_dir, job_dir, log_path
from aios.executors.base import LaunchSpec, SandboxSpec
from aios.executors.sandbox import IMAGE_JOB_DIR
from aios.lineage.plan import FORWARDED, INPUTS_DIR, OUTPUTS_DIR, PRIVATE_INPUTS, DataPlan
from aios.resources import Allocation
from aios.store import JobRow

__all__ = ["STAGE_WRAPPER", "Launching", "data_plan", "has_data", "inner_command", "stage_env"]

FUNCTION_RUNNER = ["-m", "aios.control.function"]
STAGE_WRAPPER = (sys.executable, "-I", "-m", "aios.lineage.stage")
"""Isolated mode (``-I``): the wrapper runs with the control plane's rights in the job's
directory, which must not put anything the job wrote on its import path."""


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
    from aios.control.layout import FUNCTION_FILE

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


def stage_env() -> dict[str, str]:
    """The control plane's repository passphrase and object-store credentials."""
    return {name: os.environ[name] for name in FORWARDED if name in os.environ}


@dataclass(frozen=True)
class Launching:
    """How this control plane launches jobs. ``sandboxed``: every replica runs in a
    sandbox that hides ``hidden`` (the control plane's home and data repository);
    ``api_url`` is where a job reaches the API; ``mint`` gives a job's token for an
    attempt (None: the API runs without auth, a job needs none)."""

    home: Path
    sandboxed: bool = False
    hidden: tuple[str, ...] = ()
    api_url: str | None = None
    mint: Callable[[int, int], str] | None = None

    def spec(
        self,
        row: JobRow,
        attempt: int,
        replica: int,
        allocation: Allocation,
        uid: int | None = None,
    ) -> LaunchSpec:
        """What the executor needs to start replica ``replica`` of ``row``'s attempt
        ``attempt``; ``uid`` is its queue's (for a control plane running as root)."""
        workdir = job_dir(self.home, row.id)
        sandbox = None
        if self.sandboxed:
            sandbox = SandboxSpec(
                network="none" if row.network == "none" else "host",
                uid=uid,
                image=row.image,
                mounts=tuple(str(m) for m in row.mounts or ()),
                hidden=self.hidden,
                inputs=bool(row.inputs),
            )
        inside = Path(IMAGE_JOB_DIR) if sandbox is not None and row.image else workdir
        env = {str(k): str(v) for k, v in (row.env or {}).items()}
        env.setdefault("AIOS_REPLICAS", str(row.replicas))
        if self.api_url is not None:
            env["AIOS_URL"] = self.api_url
        if self.mint is not None:
            env["AIOS_TOKEN"] = self.mint(row.id, attempt)
        supervisor: tuple[str, ...] = ()
        supervisor_env: dict[str, str] = {}
        if has_data(row):  # the stage wrapper stages its datasets, then runs it
            supervisor, supervisor_env = STAGE_WRAPPER, stage_env()
            if sandbox is not None:  # its inputs out of its reach, bound from there
                view = "image" if row.image else "host"
                supervisor = (*STAGE_WRAPPER, PRIVATE_INPUTS, view)
            env["AIOS_INPUTS"] = str(inside / INPUTS_DIR)
            env["AIOS_OUTPUTS"] = str(inside / OUTPUTS_DIR)
        return LaunchSpec(
            job_id=str(row.id),
            attempt=attempt,
            replica=replica,
            command=inner_command(row, FUNCTION_FILE),
            shell=row.shell,
            workdir=workdir,
            stdout=log_path(self.home, row.id, "stdout", replica),
            stderr=log_path(self.home, row.id, "stderr", replica),
            checkpoint_dir=workdir / "checkpoint",
            env=env,
            cores=allocation.cores,
            gpus=allocation.gpus,
            memory=allocation.memory,
            time_limit=row.time_limit,
            grace=row.grace,
            node=allocation.node,
            sandbox=sandbox,
            control_dir=control_dir(self.home, row.id),
            supervisor=supervisor,
            supervisor_env=supervisor_env,
        )
