"""The Ray executor: AIOS places, Ray reaches the node.

Each Ray node gets a :class:`~aios.cluster.agent.NodeAgent`, a detached actor pinned
to it by node affinity that asks Ray for no resources of its own; the replicas of a job
start on the node the scheduler chose through that node's agent. A gang's replicas are
first reserved together in Ray as a placement group whose bundles are pinned to the
chosen nodes (by the ``ray.io/node-id`` label), so the gang starts whole or not at all
and no other Ray work takes its cores meanwhile; the group is removed when the attempt
ends.

One thread per node calls the agent's ``wait`` in a loop and brings back log bytes
(appended to the control plane's log files, so ``aios logs -f`` follows a remote job),
result files and exits. When the agent dies with its node, every replica it ran is
reported :attr:`~aios.executors.base.ExitReason.LOST`, and the scheduler retries or
releases the jobs as their policy says.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aios.cluster.agent import CONTROL_FILES, Key, NodeAgent, Shipment, key_of
from aios.cluster.nodes import NODE_ID_LABEL
from aios.cluster.shipping import Shipping
from aios.executors.base import ExitReason, Handle, LaunchSpec, ProcessExit, StopReason
from aios.files import write_atomically
from aios.resources import Node

__all__ = ["NAMESPACE", "RayExecutor"]

log = logging.getLogger("aios.cluster")

NAMESPACE = "aios"
STAGED_IN = ("function.pkl", "data-plan.json")
"""Files of the control plane's job directory (a data plan: of its control directory) a
replica needs on its node."""
CALL_TIMEOUT = 30.0
WAIT_SECONDS = 0.25
"""How long one ``wait`` on an agent may block: the latency of log lines."""
RESERVE_TIMEOUT = 15.0


@dataclass(slots=True)
class _Replica:
    node: str
    spec: LaunchSpec


class RayExecutor:
    """Implements :class:`~aios.executors.base.Executor` on a Ray cluster this process
    is connected to (``ray.init`` done); ``plane`` names this control plane (its agents
    are its own, found again after a restart). ``node_home`` is the agents' directory on each
    node."""

    def __init__(
        self,
        *,
        on_exit: Callable[[], None] | None = None,
        node_home: str = "/tmp/aios-node",
        plane: str = "aios",
        shipped_roots: Sequence[str] = (),
    ) -> None:
        self.on_exit = on_exit
        self.on_node_lost: Callable[[str], None] | None = None
        """Called (from a pump or the node watcher) when a node is gone."""
        self.node_home = node_home
        self.plane = plane
        self.shipped = Shipping(shipped_roots)
        """Files of the control plane's machine that commands name (a registry's model
        artifacts, for serving replicas): they travel to a node with the first replica
        there that needs them."""
        """Names this control plane's agents: two control planes on one Ray cluster (or
        one whose job ids started over) never take each other's exits."""
        self._lock = threading.Lock()
        self._agents: dict[str, Any] = {}
        self._pumps: dict[str, threading.Event] = {}
        self._live: dict[Key, _Replica] = {}
        self._done: list[ProcessExit] = []
        self._groups: dict[tuple[str, int], tuple[Any, set[int]]] = {}
        self._lost: dict[str, list[ProcessExit]] = {}
        self._threads: list[threading.Thread] = []
        self._nodes: dict[str, Node] = {}

    # -- nodes -------------------------------------------------------------------------
    def add_node(self, node: Node) -> None:
        """Starts (or finds, after a restart) the node's agent and its pump thread."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node_id = node.labels[NODE_ID_LABEL]
        agent = (
            ray.remote(NodeAgent)
            .options(
                name=f"aios-agent-{self.plane}-{node_id}",
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_concurrency=16,
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            )
            .remote(f"{self.node_home}/{node_id[:12]}")  # what _placed names
        )
        stopped = threading.Event()
        pump = threading.Thread(
            target=self._pump,
            args=(node.name, agent, stopped),
            name=f"aios-pump-{node.name}",
            daemon=True,
        )
        with self._lock:
            self._agents[node.name] = agent
            self._pumps[node.name] = stopped
            self._threads.append(pump)
            self._nodes[node.name] = node
        pump.start()

    def remove_node(self, name: str, why: str = "its Ray node left the cluster") -> None:
        """Forgets node ``name`` and holds its replicas' LOST exits until
        :meth:`release_lost` (called by ``on_node_lost``, once the scheduler no longer
        counts the node: a retry must not be placed on it again); at once without
        ``on_node_lost``."""
        with self._lock:
            if self._agents.pop(name, None) is None:
                return  # already removed (its agent died, then Ray said it left)
            stopped = self._pumps.pop(name, None)
            self._nodes.pop(name, None)
            self.shipped.forget(name)
            lost = [key for key, replica in self._live.items() if replica.node == name]
            for key in lost:
                del self._live[key]
            self._lost[name] = [
                ProcessExit(*key, None, ExitReason.LOST, f"node {name}: {why}") for key in lost
            ]
        if stopped is not None:
            stopped.set()
        if self.on_node_lost is not None:
            self.on_node_lost(name)
        else:
            self.release_lost(name)

    def release_lost(self, name: str) -> None:
        """Reports the replicas of the removed node ``name`` as LOST exits."""
        with self._lock:
            lost = self._lost.pop(name, [])
            for done in lost:
                self._release_group(done)
            self._done.extend(lost)
        if lost and self.on_exit is not None:
            self.on_exit()

    def _agent(self, node: str) -> Any:
        return self._placed(node)[0]

    def _placed(self, node: str) -> tuple[Any, str]:
        """Node ``node``'s agent and its directory there; OSError once it is gone."""
        with self._lock:
            agent, known = self._agents.get(node), self._nodes.get(node)
        if agent is None or known is None:
            raise OSError(f"node {node} is not (or no longer) in the Ray cluster")
        return agent, f"{self.node_home}/{known.labels[NODE_ID_LABEL][:12]}"

    # -- the Executor contract ---------------------------------------------------------
    def reserve(self, specs: Sequence[LaunchSpec]) -> None:
        """Reserves a gang's replicas in Ray as one placement group, each bundle on the
        node its replica was given; OSError when Ray cannot place it in time."""
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        with self._lock:
            nodes = {spec.node: self._nodes.get(spec.node) for spec in specs}
        if None in nodes.values():
            raise OSError("a node of the gang is no longer in the Ray cluster")
        bundles = [_bundle(spec) for spec in specs]
        selectors = [{NODE_ID_LABEL: _node_id(nodes[spec.node])} for spec in specs]
        group = placement_group(bundles, strategy="PACK", bundle_label_selector=selectors)
        try:
            ray.get(group.ready(), timeout=RESERVE_TIMEOUT)
        except Exception as exc:
            remove_placement_group(group)
            raise OSError(f"Ray could not reserve the gang's {len(specs)} replicas: {exc}") from exc
        with self._lock:
            first = specs[0]
            self._groups[(first.job_id, first.attempt)] = (group, {s.replica for s in specs})

    def launch(self, spec: LaunchSpec) -> Handle:
        import ray

        agent, node_home = self._placed(spec.node)
        spec, bundles = self.shipped.prepare(spec, node_home)
        files = {}
        for name in STAGED_IN:
            where = spec.control_dir if name in CONTROL_FILES else spec.workdir
            if where is not None and (where / name).is_file():
                files[name] = (where / name).read_bytes()
        key = key_of(spec.job_id, spec.attempt, spec.replica)
        with self._lock:  # before it starts: its first lines may come back at once
            self._live[key] = _Replica(spec.node, spec)
        try:
            handle: Handle = ray.get(
                agent.launch.remote(spec, files, bundles), timeout=CALL_TIMEOUT
            )
        except Exception as exc:
            with self._lock:
                self._live.pop(key, None)
            raise OSError(f"node {spec.node}: {exc}") from exc
        self.shipped.delivered(spec.node, bundles)
        return handle

    def stop(self, handle: Handle, reason: StopReason, grace: float) -> None:
        with self._lock:
            replica = self._live.get(key_of(handle.job_id, handle.attempt, handle.replica))
            agent = None if replica is None else self._agents.get(replica.node)
        if agent is not None:
            agent.stop.remote(handle, reason, grace)  # its exit comes back through the pump

    def adopt(self, handle: Handle, spec: LaunchSpec) -> bool:
        import ray

        try:
            alive: bool = ray.get(
                self._agent(spec.node).adopt.remote(handle, spec), timeout=CALL_TIMEOUT
            )
        except Exception:
            self._report_lost(spec, "its node is gone")
            return False
        with self._lock:
            self._live[key_of(spec.job_id, spec.attempt, spec.replica)] = _Replica(spec.node, spec)
        return alive

    def find(self, spec: LaunchSpec) -> Handle | None:
        import ray

        try:
            found: Handle | None = ray.get(
                self._agent(spec.node).find.remote(spec), timeout=CALL_TIMEOUT
            )
        except Exception:
            return None
        return found

    def poll(self) -> list[ProcessExit]:
        with self._lock:
            done, self._done = self._done, []
        return done

    def close(self) -> None:
        """Stops the pumps; the agents and their replicas keep running (adopted later)."""
        with self._lock:
            pumps = list(self._pumps.values())
            self._pumps.clear()
            threads, self._threads = self._threads, []
        for stopped in pumps:
            stopped.set()
        for thread in threads:
            thread.join(timeout=2 * WAIT_SECONDS + 1)

    def kill_agents(self) -> None:
        """Kills this control plane's agents (their replicas keep running, unwatched):
        for a control plane that is gone for good, and for tests."""
        import ray

        self.close()
        with self._lock:
            agents, self._agents = list(self._agents.values()), {}
        for agent in agents:
            with contextlib.suppress(Exception):  # its node may be gone already
                ray.kill(agent, no_restart=True)

    # -- the pumps ---------------------------------------------------------------------
    def _pump(self, node: str, agent: Any, stopped: threading.Event) -> None:
        import ray

        while not stopped.is_set():
            try:
                shipment: Shipment = ray.get(agent.wait.remote(WAIT_SECONDS), timeout=CALL_TIMEOUT)
            except ray.exceptions.GetTimeoutError:
                continue
            except (Exception, SystemExit) as exc:  # the actor died, or Ray shut down
                if isinstance(exc, SystemExit) or not ray.is_initialized():
                    return
                if not stopped.is_set():
                    log.warning("node %s: its agent is gone (%s)", node, type(exc).__name__)
                    self.remove_node(node, "its Ray node died")
                return
            self._take(shipment)

    def _take(self, shipment: Shipment) -> None:
        with self._lock:
            specs = {key: r.spec for key, r in self._live.items()}
        for chunk in shipment.logs:
            spec = specs.get(chunk.key)
            if spec is not None:
                path = spec.stdout if chunk.stream == "stdout" else spec.stderr
                with path.open("ab") as out:
                    out.write(chunk.data)
        for key, name, data in shipment.files:
            spec = specs.get(key)
            if spec is not None:
                where = spec.control_dir if name in CONTROL_FILES else spec.workdir
                if where is not None:
                    write_atomically(where / name, data, durable=False)
        if not shipment.exits:
            return
        with self._lock:
            for done in shipment.exits:
                self._live.pop(key_of(done.job_id, done.attempt, done.replica), None)
                self._release_group(done)
            self._done.extend(shipment.exits)
        if self.on_exit is not None:
            self.on_exit()

    def _release_group(self, done: ProcessExit) -> None:
        """Removes the gang's placement group once its last replica ended (lock held)."""
        entry = self._groups.get((done.job_id, done.attempt))
        if entry is None:
            return
        group, replicas = entry
        replicas.discard(done.replica)
        if not replicas:
            from ray.util.placement_group import remove_placement_group

            del self._groups[(done.job_id, done.attempt)]
            remove_placement_group(group)

    def _report_lost(self, spec: LaunchSpec, why: str) -> None:
        with self._lock:
            self._done.append(
                ProcessExit(spec.job_id, spec.attempt, spec.replica, None, ExitReason.LOST, why)
            )


def _node_id(node: Node | None) -> str:
    assert node is not None
    return node.labels[NODE_ID_LABEL]


def _bundle(spec: LaunchSpec) -> dict[str, float]:
    bundle: dict[str, float] = {"CPU": float(max(len(spec.cores), 1))}
    if spec.gpus:
        bundle["GPU"] = float(len(spec.gpus))
    return bundle
