"""Ray's nodes as AIOS nodes, and a watcher that follows them as they join and leave.

A Ray node's resources become the node's capacity: ``CPU`` whole cores, ``memory``
bytes, ``GPU`` devices of the kind its ``accelerator_type:KIND`` resource names
(``gpu`` when none does), and every other resource with an AIOS name (``fast: 4``) as
a custom resource. Ray's bookkeeping resources (``object_store_memory``, ``node:…``)
are left out. The node is named ``ray-`` and the first 12 hex digits of its id; its
labels hold the full id and its address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aios.loop import Loop
from aios.names import is_name
from aios.resources import Node

__all__ = ["NODE_ID_LABEL", "NodeWatcher", "node_from_ray", "ray_nodes"]

log = logging.getLogger("aios.cluster")

NODE_ID_LABEL = "ray.io/node-id"
_BOOKKEEPING = {"CPU", "GPU", "memory", "object_store_memory"}


def node_name(node_id: str) -> str:
    return f"ray-{node_id[:12]}"


def node_from_ray(info: Mapping[str, Any]) -> Node:
    """The AIOS node for one entry of ``ray.nodes()``."""
    resources: Mapping[str, float] = info.get("Resources") or {}
    kinds = [k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")]
    custom = {
        name: int(amount)
        for name, amount in resources.items()
        if name not in _BOOKKEEPING
        and not name.startswith(("node:", "accelerator_type:"))
        and is_name(name)
    }
    gpus = int(resources.get("GPU", 0))
    return Node.build(
        node_name(str(info["NodeID"])),
        cpus=int(resources.get("CPU", 0)),
        memory=int(resources.get("memory", 0)),
        gpus=gpus,
        gpu_kind=kinds[0] if kinds and gpus else "gpu",
        labels={NODE_ID_LABEL: str(info["NodeID"]), "address": str(info["NodeManagerAddress"])},
        custom=custom,
    )


def ray_nodes() -> dict[str, Node]:
    """The live nodes of the Ray cluster this process is connected to, by AIOS name."""
    import ray

    return {
        node.name: node
        for node in (node_from_ray(info) for info in _alive(ray.nodes()))  # type: ignore[no-untyped-call]
    }


class NodeWatcher:
    """Calls ``changed(joined, left)`` (from its thread) whenever Ray's live nodes differ
    from the last ones seen, every ``interval`` seconds."""

    def __init__(
        self,
        known: Mapping[str, Node],
        changed: Callable[[list[Node], list[str]], None],
        interval: float = 1.0,
    ) -> None:
        self.known = dict(known)
        self.changed = changed
        self.interval = interval
        self._loop = Loop("aios-ray-nodes", self.check, interval)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def check(self) -> None:
        """Compares Ray's nodes with the known ones once."""
        current = ray_nodes()
        joined = [node for name, node in current.items() if name not in self.known]
        left = [name for name in self.known if name not in current]
        if joined or left:
            self.known = current
            self.changed(joined, left)


def _alive(infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [info for info in infos if info.get("Alive")]
