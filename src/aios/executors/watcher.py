"""The local executor's watcher: the one background thread that owns every clock of
the replicas it watches.

It sleeps in ``epoll`` on one pidfd per replica (readable when the replica's wrapper
exits) and on an eventfd that wakes it, with a timeout set to the nearest timer: a time
limit, the SIGKILL at the end of a grace, the memory watchdog's next sample. When a
wrapper exits, the thread kills what is left of its group, reaps the wrapper when it is
this process's child, reads the exit record, asks the cgroup whether the OOM killer
struck, gives the cgroup back for reuse (or removes it), queues the
:class:`ProcessExit` and calls ``on_exit``. :meth:`Watcher.poll` only takes what is
queued, so it never blocks and never misses an exit between two calls.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from aios.executors.base import Handle, LaunchSpec, ProcessExit, StopReason
from aios.executors.isolation import MemoryCgroups, oom_killed, remove_cgroup
from aios.executors.process import (
    exit_code_of,
    has_ended,
    read_exit_record,
    rss_by_group,
    sandbox_started,
    signal_group,
    stop_marker,
)
from aios.executors.replica import Replica

__all__ = ["Watcher"]

_log = logging.getLogger(__name__)

_CGROUP_RETRY = 0.1
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
_FALLBACK_POLL = 0.02
"""How often replicas without a pidfd (kernels before 5.3) are checked for an exit."""
_SANDBOX_START = 5.0
"""Seconds after which a sandbox is taken to have started its command (it takes
milliseconds), so a stop need not look for it."""
_TERM_RETRY = 0.005
"""How often a stop that reached a sandbox before its command looks again."""


class Watcher:
    """Watches replicas from one daemon thread: their exits, time limits, stops and
    memory. ``cgroups`` takes back the cgroups of replicas that ended; ``on_exit`` and
    ``watchdog_interval`` are :class:`~.local.LocalExecutor`'s. Methods may be called
    from any thread."""

    def __init__(
        self,
        cgroups: MemoryCgroups | None,
        on_exit: Callable[[], None] | None,
        watchdog_interval: float,
    ) -> None:
        self._cgroups = cgroups
        self._on_exit = on_exit
        self._watchdog_interval = watchdog_interval

        self._lock = threading.Lock()
        self._replicas: dict[int, Replica] = {}
        self._by_fd: dict[int, Replica] = {}
        self._sampled: dict[int, Replica] = {}
        self._polled: dict[int, Replica] = {}
        self._timers: list[tuple[float, int, str, Replica]] = []
        self._sequence = itertools.count()
        self._done: list[ProcessExit] = []
        self._leftover_cgroups: list[Path] = []
        self._next_sample = 0.0
        self._next_cgroup_retry = 0.0
        self._wake_at = 0.0
        self.closed = False

        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name="aios-local-executor", daemon=True)
        self._thread.start()

    # -- what the executor asks ------------------------------------------------------

    def watch(self, handle: Handle, spec: LaunchSpec, pidfd: int | None, *, age: float) -> None:
        """Watches a replica whose process was created ``age`` seconds ago."""
        replica = Replica.of(handle, spec, pidfd, born=time.monotonic() - age)
        wake = False
        with self._lock:
            self._replicas[handle.pid] = replica
            if pidfd is not None:
                self._by_fd[pidfd] = replica
                self._epoll.register(pidfd, select.EPOLLIN)
            else:
                self._polled[handle.pid] = replica
                wake = True
            if replica.watchdog:
                wake |= not self._sampled
                self._sampled[handle.pid] = replica
            if spec.time_limit is not None:
                deadline = time.monotonic() + spec.time_limit - age
                self._add_timer(deadline, "deadline", replica)
                wake |= deadline < self._wake_at
        if wake:
            self._wake()

    def watches(self, handle: Handle) -> bool:
        """Whether the replica of ``handle`` (that very process) is watched here."""
        with self._lock:
            known = self._replicas.get(handle.pid)
            return known is not None and known.handle.started == handle.started

    def stop(self, handle: Handle, reason: StopReason, grace: float) -> None:
        """See :meth:`LocalExecutor.stop`."""
        with self._lock:
            replica = self._replicas.get(handle.pid)
            if replica is None or replica.handle.started != handle.started:
                return
            self._stop(replica, reason, grace, time.monotonic())
            wake = replica.kill_at is not None and replica.kill_at < self._wake_at
        if wake:
            self._wake()

    def report(self, handle: Handle, spec: LaunchSpec, code: int | None) -> None:
        """Queues the exit of a replica that ended while nobody watched it (from its
        exit file; ``code`` when it was reaped here)."""
        replica = Replica.of(handle, spec, None)
        with self._lock:
            self._done.append(self._ended(replica, code, from_file=True))

    def poll(self) -> list[ProcessExit]:
        """The replicas that ended since the last call, each reported once."""
        with self._lock:
            done, self._done = self._done, []
        return done

    def close(self) -> bool:
        """Stops the thread and releases its descriptors; True for the call that did
        (the others find it closed)."""
        with self._lock:
            if self.closed:
                return False
            self.closed = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._lock:
            for fd in self._by_fd:
                os.close(fd)
            self._by_fd.clear()
            self._epoll.close()
            os.close(self._wake_fd)
        return True

    # -- bookkeeping -----------------------------------------------------------------

    def _forget(self, replica: Replica) -> None:
        pid = replica.handle.pid
        del self._replicas[pid]
        self._sampled.pop(pid, None)
        self._polled.pop(pid, None)
        if replica.pidfd is not None:
            del self._by_fd[replica.pidfd]
            self._epoll.unregister(replica.pidfd)
            os.close(replica.pidfd)

    def _add_timer(self, at: float, kind: str, replica: Replica) -> None:
        heapq.heappush(self._timers, (at, next(self._sequence), kind, replica))

    def _stop(self, replica: Replica, reason: StopReason, grace: float, now: float) -> None:
        if replica.stop_reason is None:
            replica.stop_reason = reason
            replica.stop_grace = grace
            # Before the signal: a wrapper that has not started its command yet
            # would otherwise start it after the SIGTERM went by (see .process).
            with contextlib.suppress(OSError):
                os.close(os.open(stop_marker(replica.handle.exit_file), _CREATE, 0o644))
        if grace <= 0:
            self._kill(replica)
            return
        # A sandbox that is still starting has no command yet to take the signal (its
        # namespaces' first processes take none): if so, it is sent again once the
        # command exists. Looked at before the signal, so that a command that appears
        # in between is not mistaken for one that had it.
        starting = (
            replica.sandboxed
            and not replica.term_pending
            and now - replica.born < _SANDBOX_START
            and not sandbox_started(replica.handle.pgid)
        )
        signal_group(replica.handle.pgid, signal.SIGTERM)
        if starting:
            replica.term_pending = True
            self._add_timer(now + _TERM_RETRY, "term", replica)
        kill_at = now + grace
        if replica.kill_at is None or kill_at < replica.kill_at:
            replica.kill_at = kill_at
            self._add_timer(kill_at, "kill", replica)

    def _term_again(self, replica: Replica, now: float) -> None:
        """Sends the SIGTERM a starting sandbox missed once its command exists."""
        if sandbox_started(replica.handle.pgid):
            replica.term_pending = False
            signal_group(replica.handle.pgid, signal.SIGTERM)
        else:
            self._add_timer(now + _TERM_RETRY, "term", replica)

    def _kill(self, replica: Replica) -> None:
        replica.killed = True
        replica.kill_at = None
        signal_group(replica.handle.pgid, signal.SIGKILL)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake_fd, 1)

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception:  # a bug; the thread must go on, or no exit is ever seen
                _log.exception("the local executor's watcher failed; it carries on")
                time.sleep(0.01)

    def _step(self) -> bool:
        """One wait and what follows it; False once the executor is closed."""
        with self._lock:
            if self.closed:
                return False
            timeout = self._plan(time.monotonic())
        events = self._epoll.poll(timeout)
        with self._lock:
            if self.closed:
                return False
            ended = []
            for fd, _ in events:
                if fd == self._wake_fd:
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(fd)
                elif (replica := self._by_fd.get(fd)) is not None:
                    ended.append(replica)
            ended.extend(r for r in self._polled.values() if has_ended(r.handle))
            exits = [e for r in ended if (e := self._finish(r)) is not None]
            self._done.extend(exits)
            now = time.monotonic()
            self._fire_timers(now)
            if self._leftover_cgroups and now >= self._next_cgroup_retry:
                self._leftover_cgroups = [c for c in self._leftover_cgroups if not remove_cgroup(c)]
                self._next_cgroup_retry = now + _CGROUP_RETRY
            sampled: dict[int, Replica] = {}
            if self._sampled and now >= self._next_sample:
                self._next_sample = now + self._watchdog_interval
                sampled = {r.handle.pgid: r for r in self._sampled.values() if not r.killed}
        if sampled:  # outside the lock: a pass over /proc takes milliseconds
            self._enforce_memory(sampled)
        if exits and self._on_exit is not None:
            try:
                self._on_exit()
            except Exception:
                _log.exception("on_exit callback failed")
        return True

    def _plan(self, now: float) -> float:
        """The seconds to sleep until the nearest timer (-1: none); drops stale timers."""
        while self._timers and not self._timer_valid(*self._timers[0]):
            heapq.heappop(self._timers)
        at = self._timers[0][0] if self._timers else math.inf
        if self._sampled:
            at = min(at, self._next_sample)
        if self._leftover_cgroups:
            at = min(at, self._next_cgroup_retry)
        if self._polled:
            at = min(at, now + _FALLBACK_POLL)
        self._wake_at = at
        return -1.0 if at == math.inf else max(0.0, at - now)

    def _timer_valid(self, at: float, _: int, kind: str, replica: Replica) -> bool:
        if self._replicas.get(replica.handle.pid) is not replica:
            return False
        if kind == "deadline":
            return replica.stop_reason is None
        if kind == "term":
            return replica.term_pending and not replica.killed
        return replica.kill_at == at

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)
            if not self._timer_valid(*timer):
                continue
            replica = timer[3]
            if timer[2] == "deadline":
                self._stop(replica, StopReason.TIME_LIMIT, replica.grace, now)
            elif timer[2] == "term":
                self._term_again(replica, now)
            else:
                self._kill(replica)

    def _enforce_memory(self, groups: dict[int, Replica]) -> None:
        totals = rss_by_group(groups)
        with self._lock:
            for pgid, rss in totals.items():
                replica = groups[pgid]
                alive = self._replicas.get(replica.handle.pid) is replica
                if alive and not replica.killed and rss > replica.memory:
                    replica.watchdog_rss = rss
                    self._kill(replica)

    def _finish(self, replica: Replica) -> ProcessExit | None:
        """Collects the exit of a replica whose wrapper has ended; None when it has
        not ended after all (nothing is done then)."""
        pid = replica.handle.pid
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return None
            is_child = True
        except ChildProcessError:  # adopted: the wrapper's parent was another process
            is_child = False
        # Before the reap: while the wrapper is an unreaped zombie, its pid (the
        # group's id) cannot be given to another process.
        signal_group(replica.handle.pgid, signal.SIGKILL)
        self._forget(replica)
        code = None
        if is_child:
            _, status = os.waitpid(pid, 0)
            code = exit_code_of(status)
        return self._ended(replica, code, from_file=not is_child)

    def _ended(self, replica: Replica, code: int | None, *, from_file: bool) -> ProcessExit:
        """The exit record of a finished replica, its cgroup examined and given back.
        Called with the lock held."""
        oom = False
        if from_file:
            recorded = read_exit_record(replica.handle.exit_file)
            if recorded is not None:
                code, ooms = recorded
                oom = code != 0 and ooms > 0
        if replica.stop_reason is not None or from_file:
            with contextlib.suppress(OSError):
                os.unlink(stop_marker(replica.handle.exit_file))
        if replica.cgroup is not None:
            oom = oom or (code != 0 and oom_killed(replica.cgroup, code))
            reused = self._cgroups is not None and self._cgroups.release(replica.cgroup)
            if not reused and not remove_cgroup(replica.cgroup):
                self._leftover_cgroups.append(replica.cgroup)
        return replica.exit(code, oom=oom)
