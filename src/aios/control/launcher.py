"""Starting the processes of bound attempts, on a thread of its own.

A launch waits for the executor until the process exists: the wrapper's exec, and on
a busy machine the new process's wait for a CPU — often longer than the rest of a
scheduling step. On the reconcile loop's thread that wait would hold up every other
exit and submission. So the loop commits a binding, hands the launch to the
:class:`Launcher` and carries on; the launcher's threads (two: one slow start does not
hold up the next) start the processes in about the order they were given them, and
record their handles in the loop's pending row changes (written
by the loop's next transaction; a crash before then is covered by ``Executor.find``).

A launched replica may end, and its exit be taken by the loop, before its handle is
recorded; the launcher then records only the attempt's handles, not its job's start.
A replica launched for an attempt that is being stopped (cancelled, preempted, or
abandoned because another replica of its gang failed) is stopped at once. A launch
that fails becomes an exit the loop takes at its next step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue

from aios.control.attempts import Attempt
from aios.control.codecs import handle_to_json
from aios.control.layout import prepare_workdir
from aios.control.rows import RowChanges
from aios.executors.base import (
    Executor,
    ExitReason,
    GangExecutor,
    Handle,
    LaunchSpec,
    ProcessExit,
    StopReason,
)
from aios.store import JobRow

__all__ = ["Launch", "Launcher"]

log = logging.getLogger("aios.control")


@dataclass(frozen=True, slots=True)
class Launch:
    """One bound attempt to start: a spec per replica, made by the loop (it alone reads
    the job's row, which the launcher only changes, with the lock held), and what the
    launcher needs to stop it."""

    job_id: int
    row: JobRow
    attempt: Attempt
    specs: list[LaunchSpec]
    grace: float


class Launcher:
    """Starts :class:`Launch` es on its threads, taken in order.

    ``lock`` is the loop's: it is held while the handles are recorded, so the loop
    never sees half of them. ``current`` says whether an attempt is still its job's
    live attempt (called with the lock held). ``wake`` is called when failed launches
    wait in :meth:`failures`.
    """

    def __init__(
        self,
        home: Path,
        executor: Executor,
        changes: RowChanges,
        lock: threading.RLock,
        current: Callable[[Attempt], bool],
        clock: Callable[[], float],
        wake: Callable[[], None],
    ) -> None:
        self.home = home
        self.executor = executor
        self.changes = changes
        self.lock = lock
        self.current = current
        self.clock = clock
        self.wake = wake
        self._queue: SimpleQueue[Launch | None] = SimpleQueue()
        self._failed: list[ProcessExit] = []
        self._threads: list[threading.Thread] = []

    def start(self, threads: int = 2) -> None:
        self._threads = [
            threading.Thread(target=self._run, name=f"aios-launch-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Starts what was handed over already, then stops the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads = []

    def submit(self, launches: list[Launch]) -> None:
        """Starts ``launches`` on the threads (at once, on the caller's thread, when the
        launcher is not running)."""
        if not self._threads:
            self.launch(launches)
            return
        for launch in launches:
            self._queue.put(launch)

    def failures(self) -> list[ProcessExit]:
        """The launches that failed since the last call, as exits; call with the lock."""
        failed, self._failed = self._failed, []
        return failed

    def _run(self) -> None:
        while (launch := self._queue.get()) is not None:
            try:
                self.launch([launch])
            except Exception:  # a bug; the next launches must still start
                log.exception("launching failed")

    def launch(self, launches: list[Launch]) -> None:
        """Starts each launch's replicas and records them, one launch at a time."""
        for launch in launches:
            prepare_workdir(self.home, launch.job_id)
            handles: dict[int, Handle] = {}
            failed: list[ProcessExit] = []
            specs = launch.specs
            if len(specs) > 1 and isinstance(self.executor, GangExecutor):
                try:  # an executor that reserves a gang whole (Ray: a placement group)
                    self.executor.reserve(specs)
                except OSError as exc:
                    failed = [_failed(spec, f"could not reserve the gang: {exc}") for spec in specs]
                    specs = []
            for spec in specs:
                try:
                    handles[spec.replica] = self.executor.launch(spec)
                except OSError as exc:
                    failed.append(_failed(spec, f"could not start: {exc}"))
            started = self.clock()  # running since its processes exist, not since bound
            with self.lock:
                self._record(launch, handles, started)
                self._failed.extend(failed)
            if failed:
                self.wake()

    def _record(self, launch: Launch, handles: dict[int, Handle], started: float) -> None:
        attempt = launch.attempt
        attempt.handles.update(handles)
        self.changes.attempt(
            attempt.record,
            handles=[handle_to_json(h) for h in attempt.handles.values()],
            started_at=started,
        )
        if self.current(attempt):
            self.changes.job(launch.row, started_at=started)
        stopping = attempt.stopping
        if stopping is None and attempt.abandoned:
            stopping = StopReason.CANCELLED
        if stopping is not None:  # stopped while it was being launched
            for handle in handles.values():
                self.executor.stop(handle, stopping, launch.grace)


def _failed(spec: LaunchSpec, message: str) -> ProcessExit:
    """The exit of a replica that never started."""
    return ProcessExit(spec.job_id, spec.attempt, spec.replica, None, ExitReason.FAILED, message)
