"""The node agent: a Ray actor pinned to one Ray node that runs AIOS's replicas there
with the local executor — the same process groups, core pinning, memory limits, GPU
masks, signals and exit records as on a single machine.

The control plane's job directory is not on this node. The agent keeps its own, under
its ``home`` (``jobs/PLANE/ID``, and the job's control directory ``run/PLANE/ID``), and
the files cross by value: the files a replica needs to start (a function's payload into
its directory, a data plan into its control directory) come with the launch; its log
lines, and the files it leaves for the control plane (a function's result and a serving
replica's endpoint from its directory, what its data stage did from the control
directory), go back with :meth:`NodeAgent.wait`, which a thread of the control plane
calls in a loop. The job's own directory is the job's: files are written there and read
from there without following a link it left (:mod:`aios.files`). Replicas run in the
node's sandbox, as on one machine; a node that cannot make one refuses the replicas that
ask for it. Core ids are the scheduler's, counted from 0 on this node;
they are mapped onto the cores this process may use.

The agent is a detached, named actor (one per node): it outlives a restart of the
control plane, and its replicas with it, as local replicas outlive one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aios.cluster.shipping import unpack
from aios.executors.base import Handle, LaunchSpec, ProcessExit, StopReason
from aios.files import NotARegularFile, open_in, write_in

__all__ = [
    "CONTROL_FILES",
    "LIVE_FILES",
    "RESULT_FILES",
    "LogChunk",
    "NodeAgent",
    "Shipment",
    "key_of",
]

RESULT_FILES = ("result.pkl", "data-result.json", "probe-answer.json", "converted.onnx")
"""Files a replica leaves for the control plane, shipped back when it ends: a function's
result, a data stage's outputs, a model load's answer and its ONNX conversion
(:mod:`aios.control.probes`)."""
CONTROL_FILES = frozenset({"data-plan.json", "data-result.json"})
"""Files of the job's control directory, not of its own."""
MAX_FILE = 1 << 30
"""The largest file shipped back."""
LIVE_FILES = ("endpoint.json",)
"""Files shipped back as soon as they appear or change (a serving replica's address)."""
MAX_CHUNK = 1 << 20
"""Bytes of one log file shipped by one :meth:`NodeAgent.wait`; the rest follows."""

Key = tuple[str, int, int]


def key_of(job_id: str, attempt: int, replica: int) -> Key:
    return (job_id, attempt, replica)


@dataclass(frozen=True, slots=True)
class LogChunk:
    """New bytes of one replica's stdout or stderr."""

    key: Key
    stream: str
    data: bytes


@dataclass(slots=True)
class Shipment:
    """What one :meth:`NodeAgent.wait` returns: log bytes, then files, then exits (in
    that order, so a replica's last lines and results land before its exit is seen)."""

    logs: list[LogChunk] = field(default_factory=list)
    files: list[tuple[Key, str, bytes]] = field(default_factory=list)
    exits: list[ProcessExit] = field(default_factory=list)


@dataclass(slots=True)
class _Tracked:
    spec: LaunchSpec
    offsets: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    live: dict[str, float] = field(default_factory=dict)


class NodeAgent:
    """Runs replicas on its node (made a Ray actor by the Ray executor)."""

    def __init__(self, home: str) -> None:
        from aios.executors.images import ImageCache
        from aios.executors.local import LocalExecutor
        from aios.executors.sandbox import Sandbox, SandboxUnavailable

        self.home = Path(home)
        (self.home / "jobs").mkdir(parents=True, exist_ok=True)
        (self.home / "run").mkdir(mode=0o700, exist_ok=True)
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._tracked: dict[Key, _Tracked] = {}
        self._cores = sorted(os.sched_getaffinity(0))
        sandbox: Sandbox | None
        try:
            sandbox = Sandbox.detect([self.home])
        except SandboxUnavailable:
            sandbox = None
        # With a lifeline: when this agent dies its node counts as lost and its jobs
        # are retried elsewhere, so its replicas must not run on unwatched.
        self.executor = LocalExecutor(
            on_exit=self._event.set,
            sandbox=sandbox,
            images=ImageCache(self.home / "images"),
            lifeline=True,
        )

    # -- where things live on this node ----------------------------------------------
    def local_spec(self, spec: LaunchSpec) -> LaunchSpec:
        """``spec`` with this node's job directory, log files and cores. Directories
        are kept per control plane (named by a digest of its job directory's parent):
        two control planes, or one whose job ids started over, never share one."""
        plane = hashlib.sha256(os.fsencode(spec.workdir.parent)).hexdigest()[:12]
        workdir = self.home / "jobs" / plane / spec.job_id
        suffix = "" if spec.replica == 0 else f".{spec.replica}"
        env = dict(spec.env)
        for name in ("AIOS_INPUTS", "AIOS_OUTPUTS"):  # the stage wrapper's, on this node
            if name in env and env[name].startswith(f"{spec.workdir}/"):
                env[name] = f"{workdir}{env[name][len(str(spec.workdir)) :]}"
        return dataclasses.replace(
            spec,
            workdir=workdir,
            stdout=workdir / f"stdout{suffix}.log",
            stderr=workdir / f"stderr{suffix}.log",
            checkpoint_dir=workdir / "checkpoint",
            cores=tuple(self._cores[c % len(self._cores)] for c in spec.cores),
            control_dir=self.home / "run" / plane / spec.job_id,
            env=env,
        )

    # -- the executor's calls ----------------------------------------------------------
    def launch(
        self, spec: LaunchSpec, files: dict[str, bytes], bundles: dict[str, bytes] | None = None
    ) -> Handle:
        for path, archive in (bundles or {}).items():
            unpack(archive, Path(path))
        local = self.local_spec(spec)
        local.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        assert local.control_dir is not None
        local.control_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for given, data in files.items():
            name = Path(given).name
            where = local.control_dir if name in CONTROL_FILES else local.workdir
            write_in(where, name, data)
        for stream in (local.stdout, local.stderr):
            stream.unlink(missing_ok=True)  # a retry's log restarts at offset 0 here
        handle = self.executor.launch(local)
        with self._lock:
            self._tracked[key_of(spec.job_id, spec.attempt, spec.replica)] = _Tracked(local)
        return handle

    def stop(self, handle: Handle, reason: StopReason, grace: float) -> None:
        self.executor.stop(handle, reason, grace)

    def adopt(self, handle: Handle, spec: LaunchSpec) -> bool:
        key = key_of(spec.job_id, spec.attempt, spec.replica)
        with self._lock:
            if key in self._tracked:  # this agent has watched it all along
                return True
        local = self.local_spec(spec)
        with self._lock:
            self._tracked[key] = _Tracked(local)
        return self.executor.adopt(handle, local)

    def find(self, spec: LaunchSpec) -> Handle | None:
        return self.executor.find(self.local_spec(spec))

    def wait(self, timeout: float) -> Shipment:
        """Waits up to ``timeout`` seconds for an exit, then ships new log bytes, live
        files, and the exits with their result files."""
        self._event.wait(timeout)
        self._event.clear()
        exits = self.executor.poll()
        shipment = Shipment(exits=exits)
        with self._lock:
            tracked = list(self._tracked.items())
        ended = {key_of(e.job_id, e.attempt, e.replica) for e in exits}
        for key, replica in tracked:
            self._ship_logs(key, replica, shipment, whole=key in ended)
            self._ship_files(key, replica, shipment, ended=key in ended)
        with self._lock:
            for key in ended:
                self._tracked.pop(key, None)
        return shipment

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    # -- shipping ----------------------------------------------------------------------
    @staticmethod
    def _ship_logs(key: Key, replica: _Tracked, shipment: Shipment, *, whole: bool) -> None:
        for stream, path in (("stdout", replica.spec.stdout), ("stderr", replica.spec.stderr)):
            offset = replica.offsets[stream]
            try:
                with path.open("rb") as source:
                    source.seek(offset)
                    data = source.read() if whole else source.read(MAX_CHUNK)
            except FileNotFoundError:
                continue
            if data:
                replica.offsets[stream] = offset + len(data)
                shipment.logs.append(LogChunk(key, stream, data))

    @staticmethod
    def _ship_files(key: Key, replica: _Tracked, shipment: Shipment, *, ended: bool) -> None:
        names = (*LIVE_FILES, *RESULT_FILES) if ended else LIVE_FILES
        for name in names:
            spec = replica.spec
            where = spec.control_dir if name in CONTROL_FILES else spec.workdir
            assert where is not None
            try:
                with open_in(where, name) as handle:
                    changed = os.fstat(handle.fileno()).st_mtime
                    if name in LIVE_FILES and replica.live.get(name) == changed:
                        continue
                    data = handle.read(MAX_FILE)
            except (FileNotFoundError, NotARegularFile):
                continue  # a link or a FIFO the job left there is not shipped
            shipment.files.append((key, name, data))
            replica.live[name] = changed
