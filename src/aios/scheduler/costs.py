"""What stopping a job costs it: the work since its last checkpoint, and a restore.

A preempted training job does not resume where it stopped. It resumes from its last
checkpoint, so the work done since then is done again, and before it does any useful
work it spends a while restoring (starting processes, loading the checkpoint, warming
the input pipeline). Tiresias (NSDI 2019), Gandiva (OSDI 2018) and Pollux (OSDI 2021)
all charge preemption this way; the defaults and where they come from are in
``docs/preemption-costs.md``.

One :class:`PreemptionCost` describes one job. The simulator charges it on every
preemption; the control plane records it with the job (``restore`` and
``checkpoint_every`` in the job's spec) so that policies and what-if replays see the
same figures. Everything here is pure arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aios.errors import InvalidInput

__all__ = ["DEFAULT_CHECKPOINT_EVERY", "DEFAULT_RESTORE", "FREE", "PreemptionCost"]

DEFAULT_RESTORE = 60.0
"""Seconds a restarted job spends restoring before it does useful work again."""
DEFAULT_CHECKPOINT_EVERY = 1800.0
"""Seconds of useful work between two checkpoints of a job."""


@dataclass(frozen=True, slots=True)
class PreemptionCost:
    """``restore``: seconds a job restarted after a preemption spends before it makes
    progress again (its first start pays nothing: a trace's durations include it).
    ``checkpoint_every``: seconds of progress between checkpoints, counted from the
    job's start (checkpoints at ``k × checkpoint_every`` seconds of progress); ``None``
    or 0 means the job checkpoints when it is told to stop, and loses nothing."""

    restore: float = DEFAULT_RESTORE
    checkpoint_every: float | None = DEFAULT_CHECKPOINT_EVERY

    def __post_init__(self) -> None:
        if not math.isfinite(self.restore) or self.restore < 0:
            raise InvalidInput(f"restore must be 0 or more seconds, got {self.restore}")
        every = self.checkpoint_every
        if every is not None and (not math.isfinite(every) or every < 0):
            raise InvalidInput(f"checkpoint interval must be 0 or more seconds, got {every}")

    def kept(self, resumed_from: float, reached: float) -> float:
        """Returns the progress (seconds of useful work) a job keeps when it is stopped
        after reaching ``reached``, having resumed this run from ``resumed_from`` (itself
        a checkpoint, or 0): the last checkpoint at or before ``reached``, and never less
        than ``resumed_from``."""
        if reached <= resumed_from:
            return resumed_from
        every = self.checkpoint_every
        if not every:
            return reached
        return max(resumed_from, math.floor(reached / every) * every)

    def progress(self, resumed_from: float, ran: float, restored: bool) -> float:
        """Returns the progress a job has reached after running ``ran`` seconds of a run
        that resumed from ``resumed_from``; a run that ``restored`` (a restart after a
        preemption) spends its first :attr:`restore` seconds making none."""
        useful = ran - self.restore if restored else ran
        return resumed_from + max(useful, 0.0)

    @property
    def expected_loss(self) -> float:
        """Seconds a preemption at a random moment costs on average: the restore and
        half a checkpoint interval of work done again."""
        return self.restore + (self.checkpoint_every or 0.0) / 2


FREE = PreemptionCost(0.0, None)
"""A preemption that costs nothing: the job resumes where it stopped, at once."""
