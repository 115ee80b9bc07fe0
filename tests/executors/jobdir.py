"""Real processes in a temporary job directory: :class:`Jobs` builds launch specs,
creates executors that signal an event on every exit, waits for exits with a deadline,
and on leaving its ``with`` block kills whatever a test left running. With a
:class:`~aios.executors.sandbox.Sandbox` every replica runs sandboxed (as the control
plane runs them), its exit records in a control directory of its own."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

from aios.errors import InvalidInput
from aios.executors import Handle, LaunchSpec, LocalExecutor, ProcessExit
from aios.executors.base import SandboxSpec
from aios.executors.sandbox import Sandbox


class Jobs:
    """Launches replicas of one job into ``workdir`` and collects their exits; in
    ``sandbox`` when one is given."""

    def __init__(self, workdir: Path, sandbox: Sandbox | None = None) -> None:
        self.workdir = workdir
        self.sandbox = sandbox
        self.control = workdir.parent / f"{workdir.name}.control" if sandbox else None
        self.handles: list[Handle] = []
        self._executors: list[LocalExecutor] = []
        self._events: dict[int, threading.Event] = {}
        self._replicas = itertools.count()

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *_: object) -> None:
        self.cleanup()

    def executor(
        self,
        isolation: Literal["auto", "cgroup", "rlimit"] = "auto",
        **options: Any,
    ) -> LocalExecutor:
        event = threading.Event()
        options.setdefault("sandbox", self.sandbox)
        executor = LocalExecutor(on_exit=event.set, isolation=isolation, **options)
        self._events[id(executor)] = event
        self._executors.append(executor)
        return executor

    def cgroup_executor(self) -> LocalExecutor:
        """An executor that holds memory limits with cgroups; skips the test where no
        cgroup may be written."""
        try:
            return self.executor(isolation="cgroup")
        except InvalidInput as e:
            pytest.skip(f"no writable memory cgroup here: {e}")

    @property
    def sandboxed(self) -> bool:
        return self.sandbox is not None

    def exit_file(self, attempt: int = 1, replica: int = 0) -> Path:
        """Where the wrapper of that replica records its exit."""
        return (self.control or self.workdir) / f".exit-{attempt}-{replica}"

    def spec(self, command: Sequence[str], **fields: Any) -> LaunchSpec:
        fields.setdefault("replica", next(self._replicas))
        if self.sandbox is not None:
            fields.setdefault("sandbox", SandboxSpec())
            fields.setdefault("control_dir", self.control)
        return LaunchSpec(
            job_id="job-1",
            attempt=fields.pop("attempt", 1),
            command=command,
            workdir=self.workdir,
            stdout=self.workdir / "stdout.log",
            stderr=self.workdir / "stderr.log",
            checkpoint_dir=self.workdir / "checkpoints",
            **fields,
        )

    def launch(
        self, executor: LocalExecutor, command: Sequence[str], **fields: Any
    ) -> tuple[Handle, LaunchSpec]:
        spec = self.spec(command, **fields)
        handle = executor.launch(spec)
        self.handles.append(handle)
        return handle, spec

    def wait(
        self, executor: LocalExecutor, count: int = 1, timeout: float = 10.0
    ) -> list[ProcessExit]:
        """Exits reported by ``executor`` until ``count`` have come; fails the test
        after ``timeout`` seconds."""
        event = self._events[id(executor)]
        deadline = time.monotonic() + timeout
        exits: list[ProcessExit] = []
        while True:
            exits += executor.poll()
            if len(exits) >= count:
                return exits
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not event.wait(remaining):
                exits += executor.poll()
                if len(exits) >= count:
                    return exits
                pytest.fail(f"{len(exits)} of {count} exits after {timeout} s: {exits}")
            event.clear()

    def wait_one(self, executor: LocalExecutor, timeout: float = 10.0) -> ProcessExit:
        (only,) = self.wait(executor, 1, timeout)
        return only

    @staticmethod
    def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Returns once ``condition()`` is true; fails the test after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout} s")
            time.sleep(0.005)

    @staticmethod
    def gone(pid: int) -> bool:
        """True when ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            return True
        return data[data.rfind(b")") + 2 :].split()[0] in (b"Z", b"X")

    @staticmethod
    def group_gone(pgid: int) -> bool:
        """True when no process of group ``pgid`` runs any more (zombies awaiting their
        reaper count as gone): inside a sandbox a pid the job reports is its own
        namespace's, so tests check the replica's whole group instead."""
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return False
        return True

    def cleanup(self) -> None:
        for executor in self._executors:
            executor.close()
        for handle in self.handles:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(handle.pgid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(handle.pid, 0)
