"""Learning how long jobs run from the jobs that have finished: the ``learned`` policy's
model of remaining service.

A job's class is what makes it like others: its queue (tenant), its size in GPUs and its
name (or command). :class:`ServiceHistory` keeps, per class, the service (GPU-seconds, or
core-seconds for CPU jobs) that recently finished jobs of that class needed, and answers
for a waiting or running job that has already received ``attained`` service with its
*Gittins index* (Gittins 1979; used for GPU clusters by Tiresias, NSDI 2019):

    G(a) = max over Δ > 0 of  P(S − a ≤ Δ | S > a) / E[min(S − a, Δ) | S > a]

the best chance of finishing per unit of service spent, over the class's distribution
of total service ``S``. Serving the highest index first minimises mean completion time
on one server when only the distribution is known; for a known duration it is shortest
remaining first, and for a distribution of decreasing hazard it is least attained
service first. The policy orders by ``1 / G(a)`` (GPU-seconds per completion, lower
first).

It learns only what the owner tells it (:meth:`ServiceHistory.observe`, once per job that
finished), so it never sees a duration before the job ends: the simulator tells it about
each job as it finishes, the control plane about each job of its history and then each
job that succeeds. The class used is the most specific with at least ``min_samples``
samples above ``attained``: (queue, GPUs, name), then (queue, name) at any size, then
(queue, GPUs), then (GPUs), then every job; with none, the key is the level of the grid
(below) that ``attained`` has reached: least attained service first, by level.

The (queue, name) class spans sizes, so it keeps what a job of it needed per unit (its
service over its GPUs: the run time) and scales to the asking job's size: for a job of
``g`` units, ``1 / G`` of service ``g · T`` at ``a`` is ``g`` times ``1 / G`` of ``T``
at ``a / g``. The same script at another size is more like the job than other scripts
at the same size (the run time of a training script is set by its data and epochs far
more than by its GPU count, which data parallelism mostly turns into throughput).

Indices are kept per class on a geometric grid of attained service, rebuilt once a tenth
of the class's samples are new, so that ordering a job costs a dictionary lookup and a
bisection, not a pass over the samples.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from aios.scheduler.job import Job

__all__ = ["ServiceHistory", "gittins_key", "gittins_table", "job_class_keys"]

ClassKey = tuple[object, ...]

GRID_START = 30.0
"""The first attained-service level (GPU-seconds) of the grid after 0."""
GRID_RATIO = 1.5
"""Each level of the grid is this much above the one before."""
GRID_LEVELS = 48
"""Levels in the grid: up to 30 · 1.5^47 GPU-seconds, far beyond any trace."""
LEVELS = (0.0, *(GRID_START * GRID_RATIO**k for k in range(GRID_LEVELS - 1)))


def job_class_keys(job: Job) -> tuple[tuple[ClassKey, float], ...]:
    """The classes of ``job``, most specific first, each with the units its samples are
    counted in (1: the job's whole service; the job's size: service per unit): (queue,
    GPUs, name) and (queue, name) when it has a name, (queue, GPUs), (GPUs), and the
    class of every job."""
    if job.name:
        return _class_keys(job.queue, job.total.gpus, job.name, job.service_units)
    return _class_keys(job.queue, job.total.gpus, "", 1.0)


@lru_cache(maxsize=4096)
def _class_keys(
    queue: str, gpus: int, name: str, units: float
) -> tuple[tuple[ClassKey, float], ...]:
    """:func:`job_class_keys` of a job of ``queue``, ``gpus`` and ``name`` (``units`` of
    service a second); worked out once per such shape (it is asked on every lookup)."""
    keys: list[tuple[ClassKey, float]] = []
    if name:
        keys.append((("q", queue, gpus, name), 1.0))
        keys.append((("n", queue, name), units))
    keys += [(("q", queue, gpus), 1.0), (("g", gpus), 1.0), ((), 1.0)]
    return tuple(keys)


def next_level(attained: float) -> float:
    """The first level of the grid above ``attained`` (infinity past the last)."""
    level = bisect_right(LEVELS, attained)
    return LEVELS[level] if level < len(LEVELS) else math.inf


def gittins_key(samples: Sequence[float], attained: float) -> float | None:
    """Returns ``1 / G(attained)`` over the sorted ``samples`` of total service, or None
    when no sample exceeds ``attained`` (the job has outlived every one of them)."""
    import numpy as np  # here, not at the top: the CLI imports the scheduler, not numpy

    start = bisect_right(samples, attained)
    above = len(samples) - start
    if above == 0:
        return None
    left = np.asarray(samples[start:], dtype=float) - attained
    finished = np.arange(1, above + 1, dtype=float)
    # Serving until the j-th remaining sample: j of them finish, the other jobs stop
    # there; the cost is the service spent on all of them.
    cost = np.cumsum(left) + (above - finished) * left
    if cost[0] <= 0.0:
        return 0.0
    return float(np.min(cost / finished))


SMALL_TABLE = 2048
"""Below this many (level, sample) pairs, :func:`gittins_table` works level by level."""


def gittins_table(
    samples: Sequence[float], levels: Sequence[float], min_samples: int
) -> list[float | None]:
    """:func:`gittins_key` of the sorted ``samples`` at each of ``levels``, or None at a
    level with fewer than ``min_samples`` samples above it; all levels in one pass over
    a (levels × samples) array, with the same arithmetic as :func:`gittins_key` (the
    samples at or below a level add exact zeros to its running sum), so the same
    figures to the last bit."""
    import numpy as np  # here, not at the top: the CLI imports the scheduler, not numpy

    count = len(samples)
    starts = [bisect_right(samples, level) for level in levels]
    rows = [i for i, start in enumerate(starts) if count - start >= min_samples]
    table: list[float | None] = [None] * len(levels)
    if count * len(rows) < SMALL_TABLE:  # numpy's fixed costs outweigh the loop's
        for i in rows:
            table[i] = gittins_key(samples, levels[i])
        return table
    values = np.asarray(samples, dtype=float)
    at = np.asarray([levels[i] for i in rows], dtype=float)[:, None]
    first = np.asarray([starts[i] for i in rows])[:, None]
    column = np.arange(count)[None, :]
    above = column >= first
    left = np.where(above, values[None, :] - at, 0.0)
    finished = (column - first + 1).astype(float)  # the j of each sample above the level
    cost = np.cumsum(left, axis=1) + ((count - first) - finished) * left
    ratio = np.where(above, cost / np.where(above, finished, 1.0), np.inf)
    best = ratio.min(axis=1)
    firsts = cost[np.arange(len(rows)), first[:, 0]]
    for row, i in enumerate(rows):
        table[i] = 0.0 if firsts[row] <= 0.0 else float(best[row])
    return table


@dataclass
class _Class:
    samples: list[float] = field(default_factory=list)
    """Sorted: the service of the class's most recent finished jobs."""
    order: deque[float] = field(default_factory=deque)
    """The same samples, oldest first, to drop the oldest past the window."""
    table: list[float | None] | None = None
    """1 / G at each level of :data:`LEVELS`, None where no sample is above it."""
    seen: int = 0
    """Jobs of the class observed so far."""
    built_at: int = 0
    """``seen`` when ``table`` was built."""


@dataclass(eq=False)
class ServiceHistory:
    """The service that finished jobs needed, per class; see the module's docstring.
    ``window``: most recent samples kept per class; ``min_samples``: fewest samples
    above a job's attained service for a class to speak for it."""

    window: int = 512
    min_samples: int = 8
    classes: dict[ClassKey, _Class] = field(default_factory=dict)
    observed: int = 0
    """Jobs observed so far."""
    revision: int = 0
    """Grows whenever :meth:`key` may answer differently for some job and attained
    service: a class reached ``min_samples`` or its table became due for a rebuild.
    While it holds, every key asked before answers the same (what callers memoise by)."""
    generation: int = 0
    """Grows whenever the estimates may have moved enough that waiting jobs' keys,
    computed when they were queued, should be computed again (see :meth:`observe`)."""
    _next_generation_at: int = 64

    def observe(self, job: Job, service: float) -> None:
        """Learns that ``job`` finished after needing ``service`` in all. Call once per
        finished job, and never before it has finished."""
        if not math.isfinite(service) or service < 0:
            return
        for key, units in job_class_keys(job):
            found = self.classes.get(key)
            if found is None:
                found = self.classes[key] = _Class()
            sample = service / units
            insort(found.samples, sample)
            found.order.append(sample)
            found.seen += 1
            if len(found.order) > self.window:
                old = found.order.popleft()
                del found.samples[bisect_right(found.samples, old) - 1]
            if len(found.samples) == self.min_samples:
                self.revision += 1  # the class speaks from now on
            if found.table is not None and found.seen - found.built_at > len(found.samples) // 10:
                found.table = None  # a tenth is new: rebuilt when next asked
                self.revision += 1
        self.observed += 1
        if self.observed >= self._next_generation_at:
            self.generation += 1
            self._next_generation_at = math.ceil(self.observed * 1.25)

    def key(self, job: Job, attained: float) -> float:
        """``1 / G(attained)`` for ``job`` from its most specific class that knows enough,
        or the grid's level at or below ``attained`` (least attained service first)
        when none does: either way a step that moves only where :meth:`next_change`
        says."""
        level = bisect_right(LEVELS, attained) - 1
        for key, units in job_class_keys(job):
            found = self.classes.get(key)
            if found is None or len(found.samples) < self.min_samples:
                continue
            at = level if units == 1.0 else bisect_right(LEVELS, attained / units) - 1
            value = self._table(found)[at]
            if value is not None:
                return value * units
        return LEVELS[level]

    def next_change(self, job: Job, attained: float) -> float:
        """The least service above ``attained`` at which :meth:`key` may answer for
        ``job`` differently (until the history learns more): where its attained service,
        in any class's units, reaches the next level of the grid."""
        change = next_level(attained)
        if job.name:  # its (queue, name) class counts service per unit
            units = job.service_units
            change = min(change, units * next_level(attained / units))
        return change

    def _table(self, found: _Class) -> list[float | None]:
        """The class's keys at every grid level, built when first asked and again after
        :meth:`observe` dropped them (a tenth of its samples new)."""
        if found.table is None:
            found.table = gittins_table(found.samples, LEVELS, self.min_samples)
            found.built_at = found.seen
        return found.table
