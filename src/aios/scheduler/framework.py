"""The scheduling framework: extension points, their statuses, and the Policy that
names a set of plugins (after the kube-scheduler framework).

A cycle calls the hooks in this order for each job it considers:

1. ``QueueSort.order_key`` — once, when the job is queued: lower keys go first.
2. ``FairShare.share`` — picks which queue offers its next job, when a policy has one.
3. ``PreFilter.pre_filter`` — job-level checks (quota, can it ever fit). May return
   UNSCHEDULABLE (not now) or UNRESOLVABLE (never: the cycle reports it as such).
4. ``NodeOrder.candidates`` then ``Filter.filter`` per node — the first nodes that pass
   every filter are scored by ``Score.score`` (the node order is the score when a policy
   has no score plugin), per replica.
5. ``Permit.permit`` — once every replica of a gang has a node: SUCCESS or reject (the
   gang is then unreserved whole; a gang is never partly placed).
6. ``Reserve.reserve`` — the placement is final for this cycle; ``Reserve.unreserve``
   undoes it and must be idempotent.
7. ``PostFilter.post_filter`` — only for a job that found no place: chooses running jobs
   to preempt so that it fits in a later cycle.

Hooks must be pure functions of their arguments: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from aios.resources import Allocation

if TYPE_CHECKING:
    from aios.scheduler.job import Job, RunningJob
    from aios.scheduler.state import NodeState
    from aios.scheduler.workspace import Workspace

__all__ = [
    "SUCCESS",
    "Code",
    "FairShare",
    "Filter",
    "Learner",
    "NodeOrder",
    "Permit",
    "Policy",
    "PostFilter",
    "PreFilter",
    "QueueSort",
    "Reserve",
    "Score",
    "Status",
]


class Code(IntEnum):
    SUCCESS = 0
    UNSCHEDULABLE = 1
    """Does not fit now; may fit later."""
    UNRESOLVABLE = 2
    """Can never fit this cluster as it is; the cycle reports it and moves on."""
    WAIT = 3
    """Over its queue's quota: waits for the queue's own usage to fall (or for a
    reclaim); other queues are not held up by it."""
    ERROR = 4


@dataclass(frozen=True, slots=True)
class Status:
    code: Code
    reason: str = ""
    ok: bool = field(init=False, repr=False, compare=False)
    """``code`` is SUCCESS (kept as a field: every placement asks it many times)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.code is Code.SUCCESS)


SUCCESS = Status(Code.SUCCESS)


class QueueSort(Protocol):
    @property
    def name(self) -> str: ...

    def order_key(self, job: Job) -> float:
        """Returns the job's place in its queue; lower goes first. Called once per
        queueing, so aging must be an offset on ``job.enqueued``."""


class FairShare(Protocol):
    @property
    def name(self) -> str: ...

    def share(self, queue: str, ws: Workspace) -> float:
        """Returns the queue's current weighted share; the cycle serves the lowest first.
        Must depend only on the queue's own usage (``ws.usage[queue]``) and the
        configuration: the cycle asks again only when that usage has changed."""


class PreFilter(Protocol):
    @property
    def name(self) -> str: ...

    def pre_filter(self, job: Job, ws: Workspace) -> Status:
        """Job-level admission before any node is looked at."""


class Filter(Protocol):
    @property
    def name(self) -> str: ...

    def filter(self, job: Job, node: NodeState, ws: Workspace) -> Status:
        """Whether one replica of ``job`` may go on ``node``. Free resources and the GPU
        kind are already checked by the node order."""


class NodeOrder(Protocol):
    @property
    def name(self) -> str: ...

    def candidates(self, job: Job, ws: Workspace) -> Iterator[NodeState]:
        """Yields nodes with room for one replica of ``job``, best first."""


class Score(Protocol):
    @property
    def name(self) -> str: ...

    def score(self, job: Job, node: NodeState, ws: Workspace) -> float:
        """Higher is better; compared among the feasible nodes the cycle sampled."""


class Permit(Protocol):
    @property
    def name(self) -> str: ...

    def permit(self, job: Job, allocations: tuple[Allocation, ...], ws: Workspace) -> Status:
        """Last word on a complete placement of every replica."""


class Reserve(Protocol):
    @property
    def name(self) -> str: ...

    def reserve(self, job: Job, allocations: tuple[Allocation, ...], ws: Workspace) -> None:
        """Called when the placement is final for this cycle."""

    def unreserve(self, job: Job, allocations: tuple[Allocation, ...], ws: Workspace) -> None:
        """Undoes :meth:`reserve`; must be idempotent."""


class PostFilter(Protocol):
    @property
    def name(self) -> str: ...

    def post_filter(self, job: Job, ws: Workspace, now: float) -> tuple[RunningJob, ...]:
        """Returns running jobs whose preemption would let ``job`` fit, or ``()``."""


class Learner(Protocol):
    """What a policy learns from the jobs that finished. Unlike the hooks above it holds
    state, fed by the owner of the :class:`ClusterState` (the simulator, the control
    plane) outside any cycle; a cycle only reads it."""

    @property
    def observed(self) -> int:
        """Jobs observed so far."""

    @property
    def generation(self) -> int:
        """Grows when what was learned moved enough that the waiting jobs should be
        ordered again (``ClusterState.reorder`` with the policy's order key)."""

    def observe(self, job: Job, service: float) -> None:
        """Learns that ``job`` finished after needing ``service`` (GPU-seconds, or
        core-seconds for a CPU job) in all. Called once per job, after it ended."""


@dataclass(frozen=True)
class Policy:
    """A named set of plugins and the cycle's options.

    ``strict``: the queue order is binding, so a job that does not fit blocks those
    behind it (FIFO as Slurm's builtin scheduler runs it); otherwise the cycle skips it.
    ``backfill``: with ``strict``, EASY backfill lets later jobs start when they do not
    delay the blocked head's reservation. ``starvation_limit``: a job that has waited
    this long gets the same reservation under any policy, so nothing waits forever.
    ``backfill_depth`` bounds how many jobs behind a reservation one cycle tries (as
    Slurm's ``bf_max_job_test``); ``score_sample`` how many feasible nodes are scored.
    ``clairvoyant``: the policy takes every job's duration estimate as its true duration,
    which only a simulation knows; the control plane refuses to run it. ``learner``: what
    the policy learns from finished jobs, which its owner must feed (see
    :class:`Learner`); such a policy must not read duration estimates.
    """

    name: str
    queue_sort: QueueSort
    node_order: NodeOrder
    fair_share: FairShare | None = None
    pre_filters: tuple[PreFilter, ...] = ()
    filters: tuple[Filter, ...] = ()
    scores: tuple[Score, ...] = ()
    permits: tuple[Permit, ...] = ()
    reserves: tuple[Reserve, ...] = ()
    post_filters: tuple[PostFilter, ...] = ()
    strict: bool = False
    backfill: bool = False
    backfill_depth: int = 256
    starvation_limit: float | None = 24 * 3600.0
    score_sample: int = 32
    clairvoyant: bool = False
    learner: Learner | None = field(default=None, compare=False)

    def order_key(self, job: Job) -> float:
        return self.queue_sort.order_key(job)
