"""A running attempt as the reconcile loop tracks it, and how its replicas' exits
add up to the attempt's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

from aios.executors.base import ExitReason, Handle, ProcessExit, StopReason
from aios.store import AttemptRow

__all__ = ["Attempt"]


@dataclass(slots=True)
class Attempt:
    """The process of each replica, and the exits reported so far."""

    job_id: int
    number: int
    record: AttemptRow
    handles: dict[int, Handle] = field(default_factory=dict)
    exits: dict[int, ProcessExit] = field(default_factory=dict)
    replicas: int = 1
    stopping: StopReason | None = None
    preemptor: str | None = None
    abandoned: bool = False
    """A replica of the gang failed and the others were told to stop: one launched
    from now on is stopped at once."""

    def outcome(self) -> ProcessExit:
        """How the attempt ended: the reason it was stopped for, else its first
        replica that neither succeeded nor was cancelled (a gang's casualty), else
        its first replica."""
        exits = sorted(self.exits.values(), key=lambda e: e.replica)
        if self.stopping is not None:
            first = exits[0]
            return ProcessExit(
                first.job_id, first.attempt, 0, first.exit_code, ExitReason(self.stopping.value)
            )
        for exit_ in exits:
            if exit_.reason not in {ExitReason.SUCCEEDED, ExitReason.CANCELLED}:
                return exit_
        return exits[0]
