"""The pending jobs, indexed for the scheduling cycle.

Jobs are grouped per queue by *shape* (what one replica asks for, the replica count,
the node selector, the priority): jobs of one shape in one queue either all fit the
current free resources and quota or none does, so a cycle that finds one that does not
fit skips the rest of its group at once (kube-scheduler's equivalence classes). Each
group is kept sorted by the policy's order key, so a cycle never sorts.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count

from aios.scheduler.job import Job

__all__ = ["Group", "OrderKey", "PendingJobs", "fifo_key", "shape_of"]

OrderKey = Callable[[Job], float]
"""A policy's queue order: lower keys go first. Computed once, when a job is queued, so
it must depend only on the job (time-based aging is written as an offset on
``job.enqueued``, which keeps the order of two waiting jobs fixed as time passes)."""

Shape = tuple[object, ...]
Entry = tuple[float, int, Job]


def fifo_key(job: Job) -> float:
    return job.enqueued


def shape_of(job: Job) -> Shape:
    r = job.request
    return (
        r.cpu,
        r.memory,
        r.gpus,
        r.gpu_kind,
        r.custom,
        job.replicas,
        job.node_selector,
        job.priority,
    )


@dataclass(slots=True, eq=False)
class Group:
    """Pending jobs of one queue and one shape, sorted by (order key, arrival)."""

    queue: str
    shape: Shape
    entries: list[Entry] = field(default_factory=list)


class PendingJobs:
    """Pending jobs by queue and shape, plus an index by how long they have waited."""

    def __init__(self, order_key: OrderKey) -> None:
        self.order_key = order_key
        self._groups: dict[tuple[str, Shape], Group] = {}
        self._where: dict[str, tuple[Group, Entry]] = {}
        self._by_age: list[tuple[float, int, str]] = []
        self._seq = count()
        self.with_dependencies: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._where

    def get(self, job_id: str) -> Job | None:
        found = self._where.get(job_id)
        return None if found is None else found[1][2]

    def jobs(self) -> Iterator[Job]:
        for _, entry in self._where.values():
            yield entry[2]

    def groups(self) -> Iterator[Group]:
        return iter(self._groups.values())

    def add(self, job: Job) -> None:
        seq = next(self._seq)
        entry: Entry = (self.order_key(job), seq, job)
        key = (job.queue, shape_of(job))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(job.queue, key[1])
        insort(group.entries, entry)
        self._where[job.id] = (group, entry)
        insort(self._by_age, (job.enqueued, seq, job.id))
        if job.dependencies:
            self.with_dependencies[job.id] = job

    def remove(self, job_id: str) -> Job:
        group, entry = self._where.pop(job_id)
        del group.entries[bisect_left(group.entries, entry[:2])]
        job = entry[2]
        del self._by_age[bisect_left(self._by_age, (job.enqueued, entry[1]))]
        if not group.entries:
            del self._groups[(group.queue, group.shape)]
        self.with_dependencies.pop(job_id, None)
        return job

    def oldest(self) -> Iterator[Job]:
        """Pending jobs from the longest waiting on."""
        for _, _, job_id in self._by_age:
            yield self._where[job_id][1][2]

    def oldest_entries(self, count: int) -> list[tuple[float, int, str]]:
        """``(enqueued, arrival, job id)`` of the ``count`` longest waiting jobs, oldest
        first: equal lists mean the same jobs (a job is immutable while it is pending)."""
        return self._by_age[:count]
