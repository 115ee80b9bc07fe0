"""What the reconcile loop shows the rest of the control plane: a frozen snapshot.

Only the loop changes the scheduler's :class:`~aios.scheduler.ClusterState` (as in
Kueue, where only the scheduler's loop mutates its cache and everyone else reads
snapshots). The API, metrics, history and the dashboard read a :class:`ClusterView`,
taken under the loop's lock and immutable after, so a reader never holds the lock
while it formats a response, and never sees a cycle half done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from aios.resources import Node, Resources
from aios.scheduler import ClusterState

__all__ = ["ClusterView", "NodeLoad", "take_view"]


@dataclass(frozen=True)
class NodeLoad:
    """A node and what running jobs hold on it."""

    node: Node
    allocated: Resources


@dataclass(frozen=True)
class ClusterView:
    """The loop's state at one moment.

    ``gpu_holders`` maps (node, GPU index) to the job holding that GPU; ``usage`` is
    what each queue's running jobs hold (resource → amount); ``queue_uids`` names every
    queue the loop knows, with the Unix uid its jobs run as (None: the control plane's
    own); ``elastic`` says whether nodes may join later (a Ray cluster)."""

    nodes: tuple[NodeLoad, ...]
    gpu_holders: Mapping[tuple[str, int], int]
    usage: Mapping[str, Mapping[str, int]]
    queue_uids: Mapping[str, int | None]
    policy: str
    elastic: bool
    cycles: int = 0
    last_cycle_seconds: float = 0.0

    def at_cycle(self, cycles: int, last_cycle_seconds: float) -> ClusterView:
        """This view with the loop's cycle count and last cycle's duration."""
        return replace(self, cycles=cycles, last_cycle_seconds=last_cycle_seconds)

    @property
    def capacity(self) -> Resources:
        """Every node's allocatable resources, together."""
        total = Resources()
        for load in self.nodes:
            total = total + load.node.allocatable
        return total

    @property
    def allocated(self) -> Resources:
        """What running jobs hold on every node, together."""
        total = Resources()
        for load in self.nodes:
            total = total + load.allocated
        return total


def take_view(
    state: ClusterState,
    queue_uids: Mapping[str, int | None],
    policy: str,
    elastic: bool,
) -> ClusterView:
    """A copy of what readers need of ``state``; call with the loop's lock held."""
    holders: dict[tuple[str, int], int] = {}
    for job_id, running in state.running.items():
        for allocation in running.allocations:
            for gpu in allocation.gpus:
                holders[(allocation.node, gpu)] = int(job_id)
    return ClusterView(
        nodes=tuple(
            NodeLoad(node_state.node, node_state.allocated())
            for _, node_state in sorted(state.nodes.items())
        ),
        gpu_holders=MappingProxyType(holders),
        usage=MappingProxyType(
            {queue: MappingProxyType(dict(used)) for queue, used in state.usage.items()}
        ),
        queue_uids=MappingProxyType(dict(queue_uids)),
        policy=policy,
        elastic=elastic,
    )
