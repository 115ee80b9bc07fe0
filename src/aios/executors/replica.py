"""What the local executor knows about one replica it watches, and how it words the
replica's end: the :class:`ProcessExit` reason and message."""

from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path

from aios.executors.base import ExitReason, Handle, LaunchSpec, ProcessExit, StopReason
from aios.resources import format_bytes

__all__ = ["Replica"]

_STOPPED = {
    StopReason.CANCELLED: ExitReason.CANCELLED,
    StopReason.PREEMPTED: ExitReason.PREEMPTED,
    StopReason.TIME_LIMIT: ExitReason.TIME_LIMIT,
}


@dataclass(eq=False, slots=True)
class Replica:
    """A replica being watched. Mutable; guarded by its executor's lock."""

    handle: Handle
    memory: int
    time_limit: float | None
    grace: float
    cgroup: Path | None
    watchdog: bool
    """Held to its memory limit by the RSS watchdog (it has no cgroup)."""
    pidfd: int | None
    stop_reason: StopReason | None = None
    stop_grace: float = 0.0
    kill_at: float | None = None
    """When the group gets SIGKILL unless the wrapper has exited (monotonic clock)."""
    killed: bool = False
    """The executor sent the group SIGKILL (end of a grace, or the watchdog)."""
    watchdog_rss: int = 0
    """The resident memory the watchdog saw when it killed the replica; 0 if it did not."""
    sandboxed: bool = False
    born: float = 0.0
    """When its process was created (monotonic clock)."""
    term_pending: bool = False
    """A stop's SIGTERM reached its sandbox before the command existed: it is sent again
    once the command does."""

    @classmethod
    def of(cls, handle: Handle, spec: LaunchSpec, pidfd: int | None, born: float = 0.0) -> Replica:
        cgroup = Path(handle.cgroup) if handle.cgroup else None
        return cls(
            handle=handle,
            memory=spec.memory,
            time_limit=spec.time_limit,
            grace=spec.grace,
            cgroup=cgroup,
            watchdog=cgroup is None and spec.memory > 0,
            pidfd=pidfd,
            sandboxed=spec.sandbox is not None,
            born=born,
        )

    def exit(self, code: int | None, *, oom: bool) -> ProcessExit:
        """How the replica ended, given its exit code (None: unknown) and whether the
        kernel's OOM killer struck its cgroup. Precedence: a stop that was asked for,
        the watchdog, no exit status (LOST), success, the OOM killer, failure."""
        limit = f"{format_bytes(self.memory)}B"
        if self.stop_reason is not None:
            reason = _STOPPED[self.stop_reason]
            if self.stop_reason is StopReason.TIME_LIMIT:
                what = f"stopped at its time limit of {self.time_limit:g} s"
            else:
                what = str(self.stop_reason)
            if self.killed:
                how = f"killed with SIGKILL after a grace of {self.stop_grace:g} s"
            else:
                how = _outcome(code)
            message = f"{what}; {how}"
        elif self.watchdog_rss:
            reason = ExitReason.OOM_KILLED
            held = f"{format_bytes(self.watchdog_rss)}B"
            message = f"killed at its memory limit of {limit} (its processes held {held})"
        elif code is None:
            reason = ExitReason.LOST
            message = "its process ended without recording an exit status"
        elif code == 0:
            reason = ExitReason.SUCCEEDED
            message = _outcome(code)
        elif oom:
            reason = ExitReason.OOM_KILLED
            message = f"killed at its memory limit of {limit} (exit code {code})"
        else:
            reason = ExitReason.FAILED
            message = _outcome(code)
        h = self.handle
        return ProcessExit(h.job_id, h.attempt, h.replica, code, reason, message)


def _outcome(code: int | None) -> str:
    if code is None:
        return "no exit status recorded"
    if code == 125:
        # Also the wrapper's status when the replica's setup failed (see .process).
        return "exited with code 125 (the command's, or a failed setup: logs, workdir, isolation)"
    if code == 126:
        return "exited with code 126 (command not executable)"
    if code == 127:
        return "exited with code 127 (command not found)"
    if 128 < code < 128 + signal.NSIG:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(code - 128).name} (exit code {code})"
    return f"exited with code {code}"
