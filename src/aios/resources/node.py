"""Nodes, their devices, and the allocation a job holds on one of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aios.errors import InvalidInput
from aios.resources.quantity import parse_memory
from aios.resources.vector import Resources

__all__ = ["Allocation", "GpuDevice", "Node"]


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One GPU of a node: its index (as ``CUDA_VISIBLE_DEVICES`` counts), model and memory."""

    index: int
    model: str
    memory: int = 0


@dataclass(frozen=True)
class Node:
    """A machine the scheduler may place work on.

    ``capacity`` is what the machine has; ``allocatable`` is what jobs may take after the
    system's reservation. CPU is handed out in whole cores, as Slurm's ``CR_Core`` does:
    ``cores`` lists the core ids jobs may be pinned to, and ``allocatable.cpu`` is
    ``1000 × len(cores)``. ``gpus`` lists the devices jobs may hold.
    """

    name: str
    capacity: Resources
    allocatable: Resources
    cores: tuple[int, ...]
    gpus: tuple[GpuDevice, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInput("a node needs a name")
        if self.allocatable.cpu != 1000 * len(self.cores):
            raise InvalidInput(
                f"node {self.name}: allocatable cpu {self.allocatable.cpu}m does not match "
                f"{len(self.cores)} allocatable cores"
            )
        if self.allocatable.gpus != len(self.gpus):
            raise InvalidInput(
                f"node {self.name}: allocatable gpus {self.allocatable.gpus} does not match "
                f"{len(self.gpus)} devices"
            )
        if not self.allocatable.fits(self.capacity):
            raise InvalidInput(f"node {self.name}: allocatable exceeds capacity")

    @classmethod
    def build(
        cls,
        name: str,
        cpus: int,
        memory: str | int,
        gpus: int = 0,
        gpu_kind: str = "gpu",
        gpu_memory: str | int = 0,
        reserved_cpus: int = 0,
        reserved_memory: str | int = 0,
        labels: Mapping[str, str] | None = None,
        custom: Mapping[str, int] | None = None,
    ) -> Node:
        """Builds a homogeneous node: ``Node.build("n1", cpus=64, memory="512G", gpus=8,
        gpu_kind="A100")``. The first ``reserved_cpus`` cores and ``reserved_memory`` bytes
        are kept back for the system and never allocated."""
        if cpus < 0 or gpus < 0 or reserved_cpus < 0:
            raise InvalidInput(f"node {name}: cpus, gpus and reserved_cpus must not be negative")
        if reserved_cpus > cpus:
            raise InvalidInput(f"node {name}: reserves {reserved_cpus} of only {cpus} cores")
        total_memory = parse_memory(memory)
        reserved = parse_memory(reserved_memory)
        if reserved > total_memory:
            raise InvalidInput(f"node {name}: reserves more memory than it has")
        devices = tuple(GpuDevice(i, gpu_kind, parse_memory(gpu_memory)) for i in range(gpus))
        kind = gpu_kind if gpus else None
        extra = tuple(sorted((custom or {}).items()))
        for resource, amount in extra:
            if amount < 0:
                raise InvalidInput(
                    f"node {name}: custom resource {resource!r} must not be negative"
                )
        capacity = Resources(1000 * cpus, total_memory, gpus, kind, extra)
        allocatable = Resources(
            1000 * (cpus - reserved_cpus), total_memory - reserved, gpus, kind, extra
        )
        return cls(
            name,
            capacity,
            allocatable,
            tuple(range(reserved_cpus, cpus)),
            devices,
            dict(labels or {}),
        )

    @property
    def gpu_kinds(self) -> frozenset[str]:
        """The GPU models this node carries."""
        return frozenset(device.model for device in self.gpus)


@dataclass(frozen=True, slots=True)
class Allocation:
    """What one replica of a job holds on one node: which cores and GPU indices (so an
    executor can pin them), how much memory, and any custom resources."""

    node: str
    cores: tuple[int, ...]
    gpus: tuple[int, ...]
    memory: int
    gpu_kind: str | None = None
    custom: tuple[tuple[str, int], ...] = ()

    @property
    def resources(self) -> Resources:
        return Resources(
            1000 * len(self.cores), self.memory, len(self.gpus), self.gpu_kind, self.custom
        )
