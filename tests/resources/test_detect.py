from __future__ import annotations

import os
import socket

import psutil
import pytest

from aios.resources import Node, detect_gpus, detect_local_node
from aios.resources.detect import short_gpu_model


def _has_nvidia_driver() -> bool:
    return os.path.exists("/proc/driver/nvidia/version")


def _this_machines_cores() -> tuple[int, ...]:
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(psutil.cpu_count() or 1))


def test_detect_local_node_sees_this_machines_cores_and_memory() -> None:
    """The local node has the cores this process may use and the machine's memory."""
    node = detect_local_node()
    cores = _this_machines_cores()
    assert isinstance(node, Node)
    assert node.name == socket.gethostname()
    assert node.cores == cores
    assert node.capacity.cpu == 1000 * len(cores)
    assert node.allocatable.cpu == 1000 * len(cores)
    assert node.capacity.memory == psutil.virtual_memory().total
    assert node.allocatable.memory == node.capacity.memory


@pytest.mark.skipif(_has_nvidia_driver(), reason="this machine has an NVIDIA driver")
def test_detect_finds_no_gpus_and_raises_nothing_without_a_driver() -> None:
    """Without an NVIDIA driver detection returns zero GPUs and raises nothing."""
    assert detect_gpus() == ()
    node = detect_local_node()
    assert node.gpus == ()
    assert node.capacity.gpus == 0
    assert node.capacity.gpu_kind is None


def test_detect_local_node_takes_a_name_and_keeps_back_cores() -> None:
    """A given name is used; reserved cores come off the lowest ids, not capacity."""
    cores = _this_machines_cores()
    reserved = 1 if len(cores) > 1 else 0
    node = detect_local_node("here", reserved_cpus=reserved)
    assert node.name == "here"
    assert node.cores == cores[reserved:]
    assert node.capacity.cpu == 1000 * len(cores)
    assert node.allocatable.cpu == 1000 * (len(cores) - reserved)
    assert node.allocatable.memory == node.capacity.memory


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("Tesla V100-SXM2-16GB", "V100"),
        ("NVIDIA", "NVIDIA"),
    ],
)
def test_short_gpu_model_keeps_the_kind_users_write(name: str, kind: str) -> None:
    """NVML marketing names shrink to the model a job would ask for."""
    assert short_gpu_model(name) == kind
