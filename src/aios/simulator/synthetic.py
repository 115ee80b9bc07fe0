"""A synthetic trace of another shape than Philly's, to judge policies off the trace they
were designed on.

Arrivals are a Poisson process (exponential gaps). Each tenant runs a few kinds of job
(a name per kind, as a training script would be named), and each kind has its own
log-normal duration: its median drawn log-uniformly between five minutes and ten hours,
its spread ``sigma``. Sizes are mostly one GPU, some 2, 4 or 8, and a heavy tail of
multi-node gangs (16 to 128 GPUs) whose probability halves with each doubling. The
arrival rate is set so that the offered work is ``load`` times the cluster's GPUs.
Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from aios.errors import InvalidInput
from aios.simulator.traces import TraceJob

__all__ = ["SyntheticShape", "synthetic_trace"]

SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
SIZE_WEIGHTS = (0.55, 0.12, 0.1, 0.1, 0.06, 0.04, 0.02, 0.01)
"""One GPU for most jobs; the gangs of 16 and more (13 %) halve with each doubling."""


@dataclass(frozen=True)
class SyntheticShape:
    """``jobs`` jobs of ``tenants`` tenants with ``kinds`` job kinds each; durations
    log-normal with spread ``sigma`` around each kind's median; offered work ``load``
    times ``gpus`` (the cluster's GPUs)."""

    jobs: int = 20_000
    tenants: int = 8
    kinds: int = 6
    sigma: float = 1.2
    load: float = 1.3
    gpus: int = 440
    seed: int = 0

    def __post_init__(self) -> None:
        if self.jobs < 1 or self.tenants < 1 or self.kinds < 1 or self.gpus < 1:
            raise InvalidInput("a synthetic trace needs jobs, tenants, kinds and GPUs")
        if not (self.sigma >= 0 and self.load > 0):
            raise InvalidInput("sigma must be 0 or more and load positive")


def synthetic_trace(shape: SyntheticShape | None = None) -> list[TraceJob]:
    """Returns the jobs of ``shape`` (default :class:`SyntheticShape`) in submit order,
    ids ``syn-<N>``, tenants ``t<K>``, names ``t<K>-kind<J>``."""
    shape = shape or SyntheticShape()
    rng = random.Random(shape.seed)
    medians = {
        (t, k): math.exp(rng.uniform(math.log(300.0), math.log(36_000.0)))
        for t in range(shape.tenants)
        for k in range(shape.kinds)
    }
    drawn: list[tuple[int, int, float, int]] = []
    work = 0.0
    for _ in range(shape.jobs):
        tenant = rng.randrange(shape.tenants)
        kind = rng.randrange(shape.kinds)
        duration = rng.lognormvariate(math.log(medians[tenant, kind]), shape.sigma)
        gpus = rng.choices(SIZES, SIZE_WEIGHTS)[0]
        drawn.append((tenant, kind, duration, gpus))
        work += duration * gpus
    # Mean gap such that the work offered per second is load × the GPUs.
    gap = work / (shape.jobs * shape.gpus * shape.load)
    now = 0.0
    trace: list[TraceJob] = []
    for n, (tenant, kind, duration, gpus) in enumerate(drawn):
        trace.append(
            TraceJob(
                f"syn-{n}",
                now,
                round(duration, 1),
                gpus,
                None,
                None,
                f"t{tenant}",
                f"t{tenant}-kind{kind}",
            )
        )
        now += rng.expovariate(1.0 / gap)
    return trace
