"""Resources: vectors of cpu, memory, GPUs and custom resources; nodes and allocations."""

from aios.resources.detect import detect_gpus, detect_local_node
from aios.resources.node import Allocation, GpuDevice, Node
from aios.resources.quantity import format_bytes, parse_cpu, parse_duration, parse_memory
from aios.resources.vector import CPU, GPU, MEMORY, Resources

__all__ = [
    "CPU",
    "GPU",
    "MEMORY",
    "Allocation",
    "GpuDevice",
    "Node",
    "Resources",
    "detect_gpus",
    "detect_local_node",
    "format_bytes",
    "parse_cpu",
    "parse_duration",
    "parse_memory",
]
