"""The resource vector: what a job asks for, what a node offers, what a queue may use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aios.errors import InvalidInput
from aios.resources.quantity import parse_cpu, parse_memory

__all__ = ["CPU", "GPU", "MEMORY", "Resources"]

CPU = "cpu"
MEMORY = "memory"
GPU = "gpu"


def _merge(
    left: tuple[tuple[str, int], ...], right: tuple[tuple[str, int], ...], sign: int
) -> tuple[tuple[str, int], ...]:
    if not right:
        return left
    merged = dict(left)
    for name, amount in right:
        merged[name] = merged.get(name, 0) + sign * amount
    return tuple(sorted((k, v) for k, v in merged.items() if v != 0))


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of each resource: cpu in millicores, memory in bytes, whole GPUs, and
    named custom resources (licences, NICs, …) as sorted ``(name, amount)`` pairs.

    ``gpu_kind`` is the GPU model a request insists on (``"A100"``); ``None`` accepts any.
    Arithmetic keeps the kind only when both sides agree on it.
    """

    cpu: int = 0
    memory: int = 0
    gpus: int = 0
    gpu_kind: str | None = None
    custom: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(
        cls,
        cpu: str | int | float = 0,
        memory: str | int = 0,
        gpus: int = 0,
        gpu_kind: str | None = None,
        custom: Mapping[str, int] | None = None,
    ) -> Resources:
        """Builds a vector from human quantities: ``Resources.of(cpu=2, memory="4G", gpus=1)``.

        ``cpu`` is in cores (``"500m"`` for millicores). Raises InvalidInput naming the
        field when a quantity is negative or unparsable.
        """
        if gpus < 0:
            raise InvalidInput(f"gpus must not be negative, got {gpus}")
        pairs = tuple(sorted((custom or {}).items()))
        for name, amount in pairs:
            if amount < 0:
                raise InvalidInput(f"custom resource {name!r} must not be negative, got {amount}")
            if name in (CPU, MEMORY, GPU):
                raise InvalidInput(f"custom resource may not be named {name!r}")
        return cls(parse_cpu(cpu), parse_memory(memory), gpus, gpu_kind or None, pairs)

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu + other.cpu,
            self.memory + other.memory,
            self.gpus + other.gpus,
            self.gpu_kind if self.gpu_kind == other.gpu_kind else None,
            _merge(self.custom, other.custom, 1),
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu - other.cpu,
            self.memory - other.memory,
            self.gpus - other.gpus,
            self.gpu_kind if self.gpu_kind == other.gpu_kind else None,
            _merge(self.custom, other.custom, -1),
        )

    def __mul__(self, factor: int) -> Resources:
        return Resources(
            self.cpu * factor,
            self.memory * factor,
            self.gpus * factor,
            self.gpu_kind,
            tuple((k, v * factor) for k, v in self.custom if v * factor),
        )

    def get(self, name: str) -> int:
        """Returns the amount of resource ``name`` (``cpu``, ``memory``, ``gpu`` or custom)."""
        if name == CPU:
            return self.cpu
        if name == MEMORY:
            return self.memory
        if name == GPU:
            return self.gpus
        for key, amount in self.custom:
            if key == name:
                return amount
        return 0

    def as_dict(self) -> dict[str, int]:
        """Returns every non-zero resource by name (``cpu``, ``memory``, ``gpu``, custom)."""
        out = {CPU: self.cpu, MEMORY: self.memory, GPU: self.gpus, **dict(self.custom)}
        return {k: v for k, v in out.items() if v}

    def fits(self, capacity: Resources) -> bool:
        """True when every amount here is at most the same amount in ``capacity`` and, if
        this vector names a GPU kind and asks for GPUs, ``capacity`` offers that kind."""
        if self.cpu > capacity.cpu or self.memory > capacity.memory or self.gpus > capacity.gpus:
            return False
        if self.gpus and self.gpu_kind is not None and capacity.gpu_kind != self.gpu_kind:
            return False
        return all(amount <= capacity.get(name) for name, amount in self.custom)

    def dominant_share(self, capacity: Resources) -> float:
        """The largest fraction of ``capacity`` this vector takes of any one resource
        (Ghodsi et al., Dominant Resource Fairness); resources the capacity lacks are
        ignored, so an empty capacity gives 0."""
        share = 0.0
        for name, amount in self.as_dict().items():
            total = capacity.get(name)
            if total > 0:
                share = max(share, amount / total)
        return share

    @property
    def is_zero(self) -> bool:
        return not (self.cpu or self.memory or self.gpus or self.custom)

    def __str__(self) -> str:
        from aios.resources.quantity import format_bytes

        parts = [f"cpu={self.cpu / 1000:g}", f"mem={format_bytes(self.memory)}"]
        if self.gpus:
            parts.append(f"gpu={self.gpus}" + (f"({self.gpu_kind})" if self.gpu_kind else ""))
        parts += [f"{k}={v}" for k, v in self.custom]
        return " ".join(parts)
