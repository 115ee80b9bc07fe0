"""The plugins AIOS ships for each extension point of the scheduling framework."""

from aios.scheduler.plugins.ordering import DominantShare, FifoSort, LasSort, PrioritySort, SjfSort
from aios.scheduler.plugins.placement import Binpack, FitsCluster, NodeSelector, SameGpuKind, Spread
from aios.scheduler.plugins.preemption import LasPreemption, PriorityPreemption, ReclaimPreemption
from aios.scheduler.plugins.quota import Quota

__all__ = [
    "Binpack",
    "DominantShare",
    "FifoSort",
    "FitsCluster",
    "LasPreemption",
    "LasSort",
    "NodeSelector",
    "PriorityPreemption",
    "PrioritySort",
    "Quota",
    "ReclaimPreemption",
    "SameGpuKind",
    "SjfSort",
    "Spread",
]
