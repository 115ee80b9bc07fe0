"""Outcome metrics of a simulated run: job completion times, queueing, utilization, fairness.

The simulator reports one :class:`JobOutcome` per job and a step function of busy GPUs;
:func:`summarize` turns them into one :class:`Metrics` row per policy. All times are in
seconds on the simulator's clock. Everything here is pure and O(n log n).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from aios.errors import InvalidInput

__all__ = [
    "BusyIntegral",
    "JobOutcome",
    "Metrics",
    "jain_index",
    "percentile",
    "summarize",
    "utilization",
    "utilization_series",
]

MIN_SLOWDOWN_DURATION = 1.0
"""Slowdown divides by ``max(duration, 1.0)`` so that zero-length jobs stay finite."""


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What happened to one job in a simulated run.

    ``start`` is when it first started and ``finish`` when it completed; each is ``None``
    if that never happened (still pending or running when the run ended, or
    ``unschedulable``: the job could never fit the cluster). ``preemptions`` counts the
    times it was stopped before completing; ``lost_work`` is the seconds of work it did
    again because a preemption came after its last checkpoint, and ``restore_time`` the
    seconds it spent restoring after preemptions (both per GPU: multiply by ``gpus``).
    """

    job_id: str
    tenant: str
    submit: float
    duration: float
    gpus: int
    start: float | None
    finish: float | None
    preemptions: int = 0
    unschedulable: bool = False
    lost_work: float = 0.0
    restore_time: float = 0.0

    @property
    def lost_gpu_seconds(self) -> float:
        """GPU-seconds preemptions cost this job: work done again, and restores."""
        return self.gpus * (self.lost_work + self.restore_time)


@dataclass(frozen=True, slots=True)
class Metrics:
    """The summary of one policy's run; see :func:`summarize` for each definition."""

    policy: str
    jobs: int
    completed: int
    unschedulable: int
    mean_jct: float
    median_jct: float
    p95_jct: float
    p99_jct: float
    mean_queueing_delay: float
    makespan: float
    gpu_utilization: float
    jain_index: float
    slowdown_jain: float
    preemptions: int
    lost_gpu_seconds: float = 0.0
    restore_seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        """Returns the fields by name, in declaration order (a row of a results table)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


def jain_index(values: Sequence[float]) -> float:
    """Returns Jain's fairness index ``(Σx)² / (n·Σx²)`` of ``values``.

    It is 1.0 when all values are equal and ``1/n`` when one value holds everything;
    empty or all-zero input gives 1.0 (nothing to be unfair about).
    """
    total = math.fsum(values)
    squares = math.fsum(x * x for x in values)
    if not values or squares == 0.0:
        return 1.0
    return total * total / (len(values) * squares)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Returns the ``q``-th percentile of ``sorted_values`` (ascending), ``q`` in [0, 100].

    Interpolates linearly between the two nearest ranks, as numpy's default ``"linear"``
    method does: rank ``(n - 1)·q/100``. Empty input gives 0.0; ``q`` outside [0, 100]
    raises InvalidInput.
    """
    if not 0.0 <= q <= 100.0:
        raise InvalidInput(f"percentile must be between 0 and 100, got {q}")
    if not sorted_values:
        return 0.0
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


class BusyIntegral:
    """The running integral of a step function of busy GPUs, for O(log n) window means.

    The function is 0 before the first sample; each sample's value holds until the next
    sample's time, and the last one holds forever.
    """

    __slots__ = ("_cumulative", "_times", "_values")

    def __init__(self, samples: Sequence[tuple[float, int]]) -> None:
        self._times = [time for time, _ in samples]
        self._values = [busy for _, busy in samples]
        self._cumulative = [0.0] * len(samples)
        for i in range(1, len(samples)):
            width = self._times[i] - self._times[i - 1]
            self._cumulative[i] = self._cumulative[i - 1] + self._values[i - 1] * width

    def at(self, time: float) -> float:
        """Returns the integral of busy GPUs from the first sample up to ``time``."""
        i = bisect_right(self._times, time) - 1
        if i < 0:
            return 0.0
        return self._cumulative[i] + self._values[i] * (time - self._times[i])

    def mean(self, start: float, end: float) -> float:
        """Returns the mean busy GPUs over ``[start, end]``; requires ``end > start``."""
        return (self.at(end) - self.at(start)) / (end - start)


def utilization(
    samples: Sequence[tuple[float, int]], capacity: int, start: float, end: float
) -> float:
    """Returns the mean of ``busy / capacity`` over ``[start, end]``.

    ``samples`` is a step function of ``(time, busy_gpus)`` sorted by time: each value holds
    until the next sample (the last one until ``end``), and before the first sample nothing
    is busy. Gives 0.0 when ``capacity == 0`` or ``end <= start``.
    """
    if capacity <= 0 or end <= start:
        return 0.0
    return BusyIntegral(samples).mean(start, end) / capacity


def utilization_series(
    samples: Sequence[tuple[float, int]], capacity: int, bucket: float
) -> list[tuple[float, float]]:
    """Returns ``(bucket start, mean utilization in the bucket)`` pairs for plotting.

    Buckets of ``bucket`` seconds tile ``[first sample time, last sample time]``; the last
    one is cut short at the last sample time and averaged over its own length. Empty when
    there are fewer than two distinct sample times. Utilization is 0.0 throughout when
    ``capacity == 0``. Raises InvalidInput unless ``bucket > 0``.
    """
    if not bucket > 0:
        raise InvalidInput(f"utilization bucket must be positive, got {bucket}")
    if not samples or samples[-1][0] <= samples[0][0]:
        return []
    first, last = samples[0][0], samples[-1][0]
    integral = BusyIntegral(samples)
    series: list[tuple[float, float]] = []
    count = math.ceil((last - first) / bucket)
    for k in range(count):
        low = first + k * bucket
        high = min(low + bucket, last)
        if high <= low:
            break
        mean = integral.mean(low, high) / capacity if capacity > 0 else 0.0
        series.append((low, mean))
    return series


def summarize(
    policy: str,
    outcomes: Sequence[JobOutcome],
    busy_samples: Sequence[tuple[float, int]],
    gpu_capacity: int,
    tenant_samples: Mapping[str, Sequence[tuple[float, int]]] | None = None,
) -> Metrics:
    """Returns the metrics of one run of ``policy``.

    - ``jobs``: outcomes given; ``completed``: those with a ``finish``; ``unschedulable``:
      those flagged as never fitting the cluster; ``preemptions``: the sum over outcomes.
    - ``lost_gpu_seconds``: GPU-seconds preemptions cost, summed over outcomes (work done
      again after the last checkpoint, and restores; :attr:`JobOutcome.lost_gpu_seconds`);
      ``restore_seconds``: the seconds jobs spent restoring, summed.
    - JCT is ``finish - submit`` over completed jobs; mean, median, p95 and p99 use
      :func:`percentile`. Each is 0.0 when nothing completed.
    - ``mean_queueing_delay``: mean of ``start - submit`` over jobs that started (0.0 if none).
    - ``makespan``: last finish minus first submit, both over completed jobs (0.0 if none).
    - ``gpu_utilization``: :func:`utilization` of ``busy_samples`` over that same window.
    - ``jain_index``: share fairness, :func:`jain_index` across tenants of the GPU time
      each received over the GPU time its max-min fair share entitled it to (see
      :mod:`aios.simulator.fairness`); ``tenant_samples`` are each tenant's GPUs held over
      time, derived from first start to finish when not given.
    - ``slowdown_jain``: :func:`jain_index` across tenants of each tenant's mean slowdown
      ``JCT / max(duration, 1.0)`` over its completed jobs; tenants with no completed job
      are left out, and one tenant or none gives 1.0.
    """
    # Imported here: fairness builds on this module's step-function integral.
    from aios.simulator.fairness import share_fairness

    finished = [(o, o.finish) for o in outcomes if o.finish is not None]
    jcts = sorted(finish - o.submit for o, finish in finished)
    delays = [o.start - o.submit for o in outcomes if o.start is not None]

    makespan = 0.0
    gpu_utilization = 0.0
    if finished:
        first_submit = min(o.submit for o, _ in finished)
        last_finish = max(finish for _, finish in finished)
        makespan = last_finish - first_submit
        gpu_utilization = utilization(busy_samples, gpu_capacity, first_submit, last_finish)

    slowdowns: dict[str, list[float]] = {}
    for o, finish in finished:
        slowdown = (finish - o.submit) / max(o.duration, MIN_SLOWDOWN_DURATION)
        slowdowns.setdefault(o.tenant, []).append(slowdown)
    tenant_means = [math.fsum(values) / len(values) for values in slowdowns.values()]

    return Metrics(
        policy=policy,
        jobs=len(outcomes),
        completed=len(finished),
        unschedulable=sum(1 for o in outcomes if o.unschedulable),
        mean_jct=_mean(jcts),
        median_jct=percentile(jcts, 50.0),
        p95_jct=percentile(jcts, 95.0),
        p99_jct=percentile(jcts, 99.0),
        mean_queueing_delay=_mean(delays),
        makespan=makespan,
        gpu_utilization=gpu_utilization,
        jain_index=share_fairness(outcomes, gpu_capacity, tenant_samples),
        slowdown_jain=jain_index(tenant_means),
        preemptions=sum(o.preemptions for o in outcomes),
        lost_gpu_seconds=math.fsum(o.lost_gpu_seconds for o in outcomes),
        restore_seconds=math.fsum(o.restore_time for o in outcomes),
    )


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0
