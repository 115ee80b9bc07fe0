from __future__ import annotations

import pytest

from aios.errors import InvalidInput, InvalidQuantity
from aios.resources import Allocation, GpuDevice, Node, Resources

GI = 1024**3


def test_build_without_reservation_offers_everything() -> None:
    """Without a reservation, allocatable equals capacity and every core is allocatable."""
    node = Node.build("n1", cpus=8, memory="64G", gpus=4, gpu_kind="A100", gpu_memory="80G")
    assert node.capacity == Resources(8000, 64 * GI, 4, "A100")
    assert node.allocatable == node.capacity
    assert node.cores == tuple(range(8))
    assert node.gpus == tuple(GpuDevice(i, "A100", 80 * GI) for i in range(4))
    assert node.gpu_kinds == frozenset({"A100"})


def test_build_keeps_back_the_first_cores_and_reserved_memory() -> None:
    """Reserved cores are the lowest ids and leave allocatable; reserved memory too."""
    node = Node.build("n1", cpus=8, memory="64G", reserved_cpus=2, reserved_memory="4G")
    assert node.capacity == Resources(8000, 64 * GI)
    assert node.allocatable == Resources(6000, 60 * GI)
    assert node.cores == (2, 3, 4, 5, 6, 7)


def test_build_without_gpus_has_no_gpu_kind() -> None:
    """A node without GPUs names no GPU kind, whatever ``gpu_kind`` says."""
    node = Node.build("cpu1", cpus=4, memory="8G", gpu_kind="A100")
    assert node.capacity.gpu_kind is None
    assert node.gpus == ()
    assert node.gpu_kinds == frozenset()


def test_build_keeps_labels_and_custom_resources() -> None:
    """Labels are kept as given; custom resources are in capacity and allocatable."""
    node = Node.build("n1", 4, "8G", labels={"zone": "a"}, custom={"nic": 2})
    assert node.labels == {"zone": "a"}
    assert node.capacity.get("nic") == 2
    assert node.allocatable.get("nic") == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpus": -1}, "must not be negative"),
        ({"gpus": -1}, "must not be negative"),
        ({"reserved_cpus": -1}, "must not be negative"),
        ({"reserved_cpus": 9}, "reserves 9 of only 8 cores"),
        ({"reserved_memory": "65G"}, "reserves more memory"),
    ],
)
def test_build_rejects_impossible_nodes(kwargs: dict[str, int | str], message: str) -> None:
    """Negative counts and reservations larger than the node are InvalidInput naming it."""
    args: dict[str, int | str] = {"cpus": 8, "memory": "64G", **kwargs}
    with pytest.raises(InvalidInput, match=message) as raised:
        Node.build("n1", **args)  # type: ignore[arg-type]
    assert "n1" in str(raised.value)


def test_build_rejects_unparsable_memory() -> None:
    """A memory string that names no quantity is InvalidQuantity."""
    with pytest.raises(InvalidQuantity):
        Node.build("n1", cpus=8, memory="lots")


def test_build_rejects_negative_custom_resources() -> None:
    """A negative custom resource is InvalidInput, as negative cpus or gpus are."""
    with pytest.raises(InvalidInput):
        Node.build("n1", cpus=8, memory="64G", custom={"nic": -1})


def test_node_needs_a_name() -> None:
    """A node without a name is InvalidInput."""
    with pytest.raises(InvalidInput, match="name"):
        Node.build("", cpus=1, memory="1G")


def test_node_checks_allocatable_against_its_devices() -> None:
    """Allocatable cpu must match the listed cores and allocatable GPUs the devices."""
    with pytest.raises(InvalidInput, match="cores"):
        Node("n1", Resources(4000, 10), Resources(4000, 10), cores=(0, 1))
    with pytest.raises(InvalidInput, match="devices"):
        Node("n1", Resources(2000, 10, 1), Resources(2000, 10, 1), cores=(0, 1))


def test_node_allocatable_may_not_exceed_capacity() -> None:
    """Allocatable larger than capacity is InvalidInput."""
    with pytest.raises(InvalidInput, match="exceeds capacity"):
        Node("n1", Resources(2000, 10), Resources(2000, 20), cores=(0, 1))


def test_allocation_resources_counts_whole_cores_and_gpus() -> None:
    """An allocation is worth 1000 millicores per core and one GPU per index."""
    alloc = Allocation("n1", cores=(2, 3, 5), gpus=(0, 6), memory=4 * GI, gpu_kind="A100")
    assert alloc.resources == Resources(3000, 4 * GI, 2, "A100")


def test_allocation_resources_keeps_custom_resources() -> None:
    """Custom resources an allocation holds show in its resources."""
    alloc = Allocation("n1", cores=(), gpus=(), memory=0, custom=(("nic", 1),))
    assert alloc.resources == Resources(custom=(("nic", 1),))
