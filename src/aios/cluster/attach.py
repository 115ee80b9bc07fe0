"""Attaching a control plane to a Ray cluster: connect, build the nodes and the
executor, and keep the scheduler's nodes in step with Ray's as nodes join and leave.

Node changes are applied on the reconcile loop's thread, each with an event
(``node_joined``, ``node_left``). A node that leaves is taken out of the scheduler
before its replicas' LOST exits are handed over, so a retry is never placed on it.
"""

from __future__ import annotations

import logging
import os

from sqlalchemy.orm import Session

from aios.cluster.executor import NAMESPACE, RayExecutor
from aios.cluster.nodes import NodeWatcher, ray_nodes
from aios.control.events import record
from aios.control.reconciler import Reconciler
from aios.errors import InvalidInput
from aios.resources import Node

__all__ = ["RayAttachment", "connect"]

log = logging.getLogger("aios.cluster")


def connect(address: str) -> list[Node]:
    """Connects this process to the Ray cluster at ``address`` (``auto``: the one
    ``ray start`` made on this machine) and returns its live nodes."""
    try:
        import ray
    except ModuleNotFoundError:
        raise InvalidInput("--ray needs Ray: pip install 'aios[ray]'") from None
    # Ray workers inherit this environment: a job's environment is its own business.
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        ray.init(
            address=address,
            namespace=NAMESPACE,
            ignore_reinit_error=True,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except ConnectionError as exc:
        raise InvalidInput(f"--ray {address}: cannot reach a Ray cluster: {exc}") from None
    nodes = list(ray_nodes().values())
    if not nodes:
        raise InvalidInput(f"--ray {address}: the cluster has no live node")
    return nodes


class RayAttachment:
    """The executor and the node watcher of a control plane on Ray."""

    def __init__(self, nodes: list[Node], executor: RayExecutor, interval: float = 1.0) -> None:
        self.executor = executor
        self.reconciler: Reconciler | None = None
        for node in nodes:
            executor.add_node(node)
        executor.on_node_lost = self._node_lost
        self.watcher = NodeWatcher({n.name: n for n in nodes}, self._changed, interval)

    def start(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def _changed(self, joined: list[Node], left: list[str]) -> None:
        for node in joined:
            self.executor.add_node(node)
        if joined and self.reconciler is not None:
            self.reconciler.call(lambda session, now: self._join(session, now, joined))
        for name in left:
            self.executor.remove_node(name)  # calls _node_lost unless its pump did

    def _join(self, session: Session, now: float, nodes: list[Node]) -> None:
        assert self.reconciler is not None
        for node in nodes:
            if self.reconciler.node_joined(node):
                record(session, now, "node_joined", f"node {node.name} joined from Ray")

    def _node_lost(self, name: str) -> None:
        if self.reconciler is None:
            self.executor.release_lost(name)
            return

        def leave(session: Session, now: float) -> None:
            assert self.reconciler is not None
            if self.reconciler.node_left(name):
                record(session, now, "node_left", f"node {name} left the Ray cluster")
            self.executor.release_lost(name)  # polled after this request, in the same step

        self.reconciler.call(leave)
