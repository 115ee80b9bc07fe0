"""The contract every executor keeps: launch a job's replica with its isolation, report
how it ended, deliver stop signals, and adopt processes that outlived a restart of the
control plane. The control plane talks to executors only through this module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "Executor",
    "ExitReason",
    "GangExecutor",
    "Handle",
    "LaunchSpec",
    "ProcessExit",
    "SandboxSpec",
    "StopReason",
]


class ExitReason(StrEnum):
    """Why an attempt ended, as recorded on the attempt."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OOM_KILLED = "oom_killed"
    TIME_LIMIT = "time_limit"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    LOST = "lost"


class StopReason(StrEnum):
    """Why the control plane asks a running attempt to stop."""

    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    TIME_LIMIT = "time_limit"


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What a replica's sandbox holds besides its own directory (see
    :mod:`aios.executors.sandbox`).

    ``network`` is ``host`` (the machine's) or ``none`` (a loopback of its own).
    ``uid`` is the Unix user (and group) it runs as when the executor runs as root (its
    tenant's); None: an unprivileged user of its own. ``image`` names an OCI image (a
    layout directory or a saved archive, :mod:`aios.executors.images`) to run in
    instead of the host's root; the executor unpacks it into ``rootfs``, with
    ``image_env`` the variables its configuration sets. ``mounts`` are host paths bound
    read-only at the same path (a serving replica's model files); ``hidden`` are host
    directories the sandbox shows empty, besides those the executor hides anyway (the
    control plane's home and data repository).
    """

    network: Literal["host", "none"] = "host"
    uid: int | None = None
    image: str | None = None
    rootfs: Path | None = None
    image_env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    inputs: bool = False
    """The job reads datasets: its stage wrapper materialises them in the replica's
    ``control_dir/inputs``, which the sandbox binds read-only (never a path in the
    job's own directory, which the job could have made a link to anywhere)."""


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """One replica of one attempt of a job, with everything its isolation needs.

    ``command`` is an argv list, or a one-element list run by ``/bin/sh -c`` when
    ``shell`` is true. ``workdir`` is the job's own directory (it exists); logs go to
    ``stdout``/``stderr``. ``cores`` and ``gpus`` are the ids the scheduler allocated;
    ``memory`` is the limit in bytes (0: none). ``time_limit`` is seconds of running
    (None: none); ``grace`` is the seconds between SIGTERM and SIGKILL.

    ``env`` is the job's whole environment besides the ``AIOS_*`` variables of its
    allocation and ``PATH``/``LANG``/``HOME`` defaults: nothing of the executor's own
    environment reaches a job. ``sandbox`` runs the command in a sandbox (None: as a
    plain process group). ``control_dir`` is a directory of the control plane's that the
    job cannot reach, for what the executor and the supervisor keep about the replica
    (exit records, a data plan); None: the job's own directory (no sandbox, or tests).

    ``supervisor`` is trusted code that runs outside the sandbox around the command (the
    data stage): the executor runs ``supervisor + [str(control_dir), "--"] +`` the
    sandboxed argv, with ``supervisor_env`` (credentials) in the supervisor's
    environment and never in the command's.
    """

    job_id: str
    attempt: int
    replica: int
    command: Sequence[str]
    workdir: Path
    stdout: Path
    stderr: Path
    checkpoint_dir: Path
    shell: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    cores: tuple[int, ...] = ()
    gpus: tuple[int, ...] = ()
    memory: int = 0
    time_limit: float | None = None
    grace: float = 30.0
    node: str = "local"
    sandbox: SandboxSpec | None = None
    control_dir: Path | None = None
    supervisor: tuple[str, ...] = ()
    supervisor_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Handle:
    """What the control plane stores about a launched replica so it can find the process
    again after a restart: its pid and process group, the process's start time (so a
    recycled pid is never mistaken for it) and where its isolation lives."""

    job_id: str
    attempt: int
    replica: int
    pid: int
    pgid: int
    started: float
    """The process's create time as the OS reports it (psutil), seconds since the epoch."""
    exit_file: str = ""
    cgroup: str = ""


@dataclass(frozen=True, slots=True)
class ProcessExit:
    """How one replica ended."""

    job_id: str
    attempt: int
    replica: int
    exit_code: int | None
    """The command's exit status in the shell's convention (``128 + N`` when signal
    ``N`` killed it); None when it is not known (a LOST replica)."""
    reason: ExitReason
    message: str = ""


class Executor(Protocol):
    """Runs replicas. Every method returns quickly; none blocks on a job."""

    def launch(self, spec: LaunchSpec) -> Handle:
        """Starts the replica and returns once its process exists."""
        ...

    def stop(self, handle: Handle, reason: StopReason, grace: float) -> None:
        """SIGTERM to the replica's whole process group now, SIGKILL after ``grace``
        seconds if anything of it is still alive. Its exit is later reported by
        :meth:`poll` with ``reason``."""
        ...

    def adopt(self, handle: Handle, spec: LaunchSpec) -> bool:
        """After a restart: takes charge of a replica launched by an earlier control
        plane. True when its process is still alive (it is watched again, limits
        included); False when it is gone (its exit, read from the exit file if one was
        written, is reported by the next :meth:`poll`)."""
        ...

    def find(self, spec: LaunchSpec) -> Handle | None:
        """After a restart: the handle of a live process launched for ``spec`` (same job,
        attempt and replica) whose handle was never recorded, or None."""
        ...

    def poll(self) -> list[ProcessExit]:
        """The replicas that ended since the last call, each reported once."""
        ...

    def close(self) -> None:
        """Stops watching; running replicas are left alone (they may be adopted later)."""
        ...


@runtime_checkable
class GangExecutor(Executor, Protocol):
    """An executor that places a gang's replicas whole before any of them starts (Ray:
    a placement group), so that a gang never runs in part."""

    def reserve(self, specs: Sequence[LaunchSpec]) -> None:
        """Reserves every replica of a gang on the node it was given, or raises
        OSError (nothing reserved) when that cannot be done in time."""
        ...
