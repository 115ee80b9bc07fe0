"""Detection of the local machine as a :class:`Node`: psutil for CPUs and memory, NVML
(nvidia-ml-py) for GPUs. A machine without NVIDIA GPUs or without a driver yields zero
GPUs and no error."""

from __future__ import annotations

import os
import socket
from typing import Any

import psutil

from aios.resources.node import GpuDevice, Node
from aios.resources.vector import Resources

__all__ = ["detect_gpus", "detect_local_node"]


def detect_gpus() -> tuple[GpuDevice, ...]:
    """Returns the NVIDIA GPUs NVML sees, or ``()`` when NVML or a driver is absent."""
    try:
        import pynvml
    except ImportError:
        return ()
    nvml: Any = pynvml
    try:
        nvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, …: no GPUs here
        return ()
    try:
        devices = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            model = name.decode() if isinstance(name, bytes) else str(name)
            memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
            devices.append(GpuDevice(index, short_gpu_model(model), memory))
        return tuple(devices)
    finally:
        nvml.nvmlShutdown()


def short_gpu_model(name: str) -> str:
    """Turns NVML's marketing name into the kind users write: ``"NVIDIA H100 80GB HBM3"``
    → ``"H100"``, ``"Tesla V100-SXM2-16GB"`` → ``"V100"``."""
    words = name.replace("NVIDIA", "").replace("Tesla", "").replace("GeForce", "").split()
    if not words:
        return name
    return words[0].split("-")[0] if words[0][0].isalpha() else "-".join(words)


def detect_local_node(name: str | None = None, reserved_cpus: int = 0) -> Node:
    """Returns this machine as a Node: the cores this process may run on (its affinity
    mask), total memory, and the GPUs NVML reports."""
    cores = (
        tuple(sorted(os.sched_getaffinity(0)))
        if hasattr(os, "sched_getaffinity")
        else tuple(range(psutil.cpu_count() or 1))
    )
    allocatable_cores = cores[reserved_cpus:]
    memory = int(psutil.virtual_memory().total)
    gpus = detect_gpus()
    kinds = {g.model for g in gpus}
    kind = next(iter(kinds)) if len(kinds) == 1 else None
    capacity = Resources(1000 * len(cores), memory, len(gpus), kind)
    allocatable = Resources(1000 * len(allocatable_cores), memory, len(gpus), kind)
    return Node(name or socket.gethostname(), capacity, allocatable, allocatable_cores, gpus)
