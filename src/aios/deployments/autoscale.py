"""How many replicas a deployment should run, from the requests in flight on it.

Concurrency-based, as Knative's autoscaler and KServe do: a replica is meant to carry
``target`` requests in flight at once. The gateway samples the in-flight count; the
deployment scales up as soon as the mean over a short window asks for more replicas,
and scales down only when no sample over a longer delay asked for as many as run now,
so a burst is served at once and a lull does not tear down replicas a moment before
the next burst. Pure: no clock, no I/O; the caller passes the time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from aios.errors import InvalidInput

__all__ = ["Autoscaler", "ScalePolicy"]


@dataclass(frozen=True)
class ScalePolicy:
    """``min_replicas``..``max_replicas``, ``target`` requests in flight per replica,
    the ``window`` (s) whose mean drives scaling up, and the ``scale_down_delay`` (s)
    over which every sample must agree before scaling down."""

    min_replicas: int = 1
    max_replicas: int = 1
    target: float = 4.0
    window: float = 5.0
    scale_down_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < max(self.min_replicas, 1):
            raise InvalidInput(
                f"replicas: need 0 <= min <= max and max >= 1, got min {self.min_replicas} "
                f"max {self.max_replicas}"
            )
        if self.target <= 0 or self.window <= 0 or self.scale_down_delay < 0:
            raise InvalidInput("autoscaling target, window and delay must be positive")

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


@dataclass
class Autoscaler:
    """Samples of requests in flight, and the replica count they call for."""

    policy: ScalePolicy
    _samples: deque[tuple[float, float]] = field(default_factory=deque)

    def observe(self, now: float, in_flight: float) -> None:
        """Records the requests in flight across the deployment at ``now``."""
        self._samples.append((now, max(in_flight, 0.0)))
        horizon = now - max(self.policy.window, self.policy.scale_down_delay)
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()

    def _wanted(self, in_flight: float) -> int:
        return math.ceil(in_flight / self.policy.target - 1e-9)

    def desired(self, now: float, current: int) -> int:
        """The replicas to run, given ``current`` run now."""
        policy = self.policy
        if policy.min_replicas == policy.max_replicas:
            return policy.min_replicas
        recent = [x for t, x in self._samples if t >= now - policy.window]
        if not recent:
            return policy.clamp(current)
        wanted = self._wanted(sum(recent) / len(recent))
        if wanted > current:
            return policy.clamp(wanted)
        lately = [x for t, x in self._samples if t >= now - policy.scale_down_delay]
        oldest = self._samples[0][0]
        if now - oldest < policy.scale_down_delay:
            return policy.clamp(current)  # not watched long enough to scale down
        return policy.clamp(min(current, max(wanted, *(self._wanted(x) for x in lately))))
