"""A discrete-event clock: a heap of ``(time, priority, seq, event)``, as in SimPy.

Events at the same time are delivered together (by priority, then in the order they
were scheduled), so the caller can apply all of them before one scheduling cycle.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from itertools import count
from typing import Generic, TypeVar

__all__ = ["EventQueue"]

E = TypeVar("E")


@dataclass
class EventQueue(Generic[E]):
    now: float = 0.0
    _heap: list[tuple[float, int, int, E]] = field(default_factory=list)
    _seq: count[int] = field(default_factory=count)

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, at: float, event: E, priority: int = 0) -> None:
        """Schedules ``event`` at time ``at`` (never before now)."""
        heapq.heappush(self._heap, (max(at, self.now), priority, next(self._seq), event))

    def peek_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_batch(self) -> list[E]:
        """Advances the clock to the next event time and returns every event due then."""
        if not self._heap:
            return []
        self.now = self._heap[0][0]
        batch: list[E] = []
        while self._heap and self._heap[0][0] == self.now:
            batch.append(heapq.heappop(self._heap)[3])
        return batch
