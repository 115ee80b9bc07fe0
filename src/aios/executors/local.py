"""The local executor: each replica is a process group on this machine, pinned to its
cores, held to its memory limit, shown only its GPUs, logged to its files, and watched
by one background thread.

The watcher thread owns every clock. It sleeps in ``epoll`` on one pidfd per replica
(readable when the replica's wrapper exits) and on an eventfd that wakes it, with a
timeout set to the nearest timer: a time limit, the SIGKILL at the end of a grace, the
memory watchdog's next sample. When a wrapper exits, the thread kills what is left of
its group, reaps the wrapper when it is this process's child, reads the exit record,
asks the cgroup whether the OOM killer struck, gives the cgroup back for reuse (or
removes it), queues the :class:`ProcessExit` and calls ``on_exit``.
:meth:`LocalExecutor.poll` only takes what is queued, so it never blocks and never
misses an exit between two calls.

The wrapper, its signals and its exit file are described in :mod:`.process`; memory
isolation in :mod:`.isolation`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
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
from typing import Literal

from aios.errors import InvalidInput
from aios.executors.base import Handle, LaunchSpec, ProcessExit, SandboxSpec, StopReason
from aios.executors.images import ImageCache
from aios.executors.isolation import (
    MemoryCgroups,
    MemoryIsolation,
    address_space_backstop,
    oom_killed,
    procs_file,
    remove_cgroup,
)
from aios.executors.process import (
    encode,
    environment,
    exit_code_of,
    find_wrapper,
    has_ended,
    identify,
    open_log,
    open_pidfd,
    read_exit_file,
    read_exit_record,
    rss_by_group,
    sandbox_started,
    signal_group,
    spawn,
    stop_marker,
    supervisor_environment,
)
from aios.executors.replica import Replica
from aios.executors.sandbox import NOBODY, Sandbox, SandboxUnavailable

__all__ = ["LocalExecutor"]

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


class LocalExecutor:
    """Runs replicas as local process groups; implements :class:`~.base.Executor`.

    ``cgroup_root`` is a directory for per-replica memory cgroups (None: look for one
    next to this process's own cgroup). ``isolation`` chooses how memory limits hold:
    ``"cgroup"`` requires a cgroup (InvalidInput when none can be written),
    ``"rlimit"`` never uses one, ``"auto"`` uses one when it can. The choice is in
    :attr:`memory_isolation`. ``on_exit`` is called from the watcher thread, without
    locks held, each time exits have been queued for :meth:`poll`; it must return
    quickly (set an event, wake a loop) and must not call back into this executor
    other than :meth:`poll`. ``watchdog_interval`` is the seconds between two samples
    of the RSS watchdog. ``sandbox`` runs the replicas whose spec asks for one (None: a
    spec that asks is refused at launch); ``images`` unpacks the images they name.

    Methods may be called from any thread. The process that owns the executor must not
    reap children it did not start itself (no ``waitpid(-1)``, no SIGCHLD ignored):
    the wrappers' exit statuses are the executor's to collect.
    """

    memory_isolation: MemoryIsolation

    def __init__(
        self,
        cgroup_root: Path | None = None,
        *,
        on_exit: Callable[[], None] | None = None,
        isolation: Literal["auto", "cgroup", "rlimit"] = "auto",
        watchdog_interval: float = 0.1,
        sandbox: Sandbox | None = None,
        images: ImageCache | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.images = images
        self._cgroups: MemoryCgroups | None = None
        if isolation != "rlimit":
            if cgroup_root is not None:
                self._cgroups = MemoryCgroups.at(cgroup_root)
            else:
                self._cgroups = MemoryCgroups.detect()
            if self._cgroups is None and isolation == "cgroup":
                raise InvalidInput(
                    "isolation='cgroup', but no memory cgroup can be created here "
                    "(no writable cgroup v2 memory controller or v1 memory hierarchy); "
                    "pass cgroup_root or use isolation='rlimit'"
                )
        self.memory_isolation = self._cgroups.mode if self._cgroups else "rlimit"
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
        self._closed = False

        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name="aios-local-executor", daemon=True)
        self._thread.start()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the Executor contract -------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> Handle:
        """Starts the replica under the exit-recording wrapper and returns once its
        process exists: in a new session, on ``spec.cores``, in a memory cgroup of
        ``spec.memory`` bytes (or under the address-space backstop and the watchdog),
        in its sandbox when it asks for one, with exactly its environment
        (:func:`~.process.environment`). Raises InvalidInput for a malformed command,
        OSError when the sandbox, the cgroup, a log file or the process cannot be
        made (a log that is a symlink or not a regular file is refused)."""
        if not spec.command or (spec.shell and len(spec.command) != 1):
            raise InvalidInput(
                f"job {spec.job_id}: command must be a non-empty argv list, or exactly "
                f"one string when shell is true; got {list(spec.command)!r}"
            )
        if self._closed:
            raise RuntimeError("launch() on a closed LocalExecutor")
        sandbox = self.sandbox if spec.sandbox is not None else None
        if spec.sandbox is not None and sandbox is None:
            raise SandboxUnavailable(
                f"job {spec.job_id} asks for a sandbox and node {spec.node} runs none"
            )
        if spec.sandbox is not None and spec.sandbox.image and spec.sandbox.rootfs is None:
            spec = self._unpacked(spec, spec.sandbox)
        if spec.control_dir is not None:
            with contextlib.suppress(FileExistsError):
                os.makedirs(spec.control_dir, 0o700)
        exit_file = _exit_file(spec)
        for stale in (exit_file, stop_marker(exit_file)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        if sandbox is not None and sandbox.root:
            _give(spec)
        command = ["/bin/sh", "-c", spec.command[0]] if spec.shell else list(spec.command)
        if spec.supervisor:
            control = spec.control_dir or spec.workdir
            command = [*spec.supervisor, str(control), "--", *command]
        cgroups, cgroup = self._cgroups, None
        if cgroups is not None and spec.memory > 0:
            cgroup = cgroups.acquire(spec.memory)
        # RLIMIT_AS would break GPU runtimes, which reserve address space by the GPU's size.
        backstop = 0
        if cgroup is None and spec.memory > 0 and not spec.gpus:
            backstop = address_space_backstop(spec.memory) // 1024
        logs: list[int] = []
        try:
            logs = [open_log(spec.stdout), open_log(spec.stderr)]
            launch = functools.partial(
                spawn,
                workdir=spec.workdir,
                stdout=logs[0],
                stderr=logs[1],
                exit_file=exit_file,
                cgroup_procs=procs_file(cgroup) if cgroup is not None else None,
                address_space_kib=backstop,
                cores=spec.cores,
            )
            if sandbox is None:
                env = environment(spec) | dict(spec.supervisor_env)
                pid, started = launch(command, env=encode(env))
            else:
                env = environment(spec, sandbox.job_dir(spec), sandbox.gpu_visible(spec.gpus))
                if spec.supervisor:  # it runs the sandbox: the job's command follows it
                    cut = len(spec.supervisor) + 2
                    command = [*command[:cut], *sandbox.prefix(spec), *command[cut:]]
                else:
                    command = [*sandbox.prefix(spec), *command]
                with sandbox.argument_fds(spec, env) as fds:
                    trusted = encode(supervisor_environment(spec))
                    pid, started = launch(command, env=trusted, pass_fds=fds)
        except BaseException:
            if cgroups is not None and cgroup is not None and not cgroups.release(cgroup):
                remove_cgroup(cgroup)
            raise
        finally:
            for fd in logs:
                os.close(fd)
        handle = Handle(
            job_id=spec.job_id,
            attempt=spec.attempt,
            replica=spec.replica,
            pid=pid,
            pgid=pid,
            started=started,
            exit_file=str(exit_file),
            cgroup=str(cgroup) if cgroup is not None else "",
        )
        self._take_charge(handle, spec, open_pidfd(pid), age=0.0)
        return handle

    def _unpacked(self, spec: LaunchSpec, sandbox: SandboxSpec) -> LaunchSpec:
        """``spec`` with its image unpacked (once per digest) as its sandbox's root."""
        assert sandbox.image is not None
        if self.images is None:
            raise SandboxUnavailable(f"job {spec.job_id} names an image and this node runs none")
        try:
            image = self.images.prepare(sandbox.image)
        except InvalidInput as exc:
            raise OSError(f"job {spec.job_id}: {exc}") from None
        unpacked = dataclasses.replace(sandbox, rootfs=image.rootfs, image_env=image.env)
        return dataclasses.replace(spec, sandbox=unpacked)

    def stop(self, handle: Handle, reason: StopReason, grace: float) -> None:
        """SIGTERM to the replica's group now, SIGKILL after ``grace`` seconds (at once
        when ``grace <= 0``) if its wrapper has not exited by then. Its exit is
        reported with ``reason``, whatever its exit code; the first reason given wins.
        A handle this executor does not watch (never launched or adopted here, or
        already reported) is ignored."""
        with self._lock:
            replica = self._replicas.get(handle.pid)
            if replica is None or replica.handle.started != handle.started:
                return
            self._stop(replica, reason, grace, time.monotonic())
            wake = replica.kill_at is not None and replica.kill_at < self._wake_at
        if wake:
            self._wake()

    def adopt(self, handle: Handle, spec: LaunchSpec) -> bool:
        """Takes charge of a replica launched by an earlier executor (an earlier control
        plane). The process is recognised by pid, process group and create time, so a
        recycled pid counts as gone. Alive: it is watched again, its time limit counted
        from its original start and its memory watchdog resumed, and True is returned.
        Gone: its exit (from the exit file; LOST when there is none) is queued for the
        next :meth:`poll` (``on_exit`` is not called: the caller knows) and False is
        returned."""
        if self._closed:
            raise RuntimeError("adopt() on a closed LocalExecutor")
        with self._lock:
            known = self._replicas.get(handle.pid)
            if known is not None and known.handle.started == handle.started:
                return True
        pidfd = open_pidfd(handle.pid) if handle.pid > 0 else None
        stat = identify(handle) if handle.pid > 0 else None
        if stat is not None and not stat.ended:
            self._take_charge(handle, spec, pidfd, age=stat.age)
            return True
        if pidfd is not None:
            os.close(pidfd)
        replica = Replica.of(handle, spec, None)
        code = None
        if stat is not None:  # a zombie that may be this process's own child
            signal_group(handle.pgid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(handle.pid, os.WNOHANG)
                if pid:
                    code = exit_code_of(status)
        with self._lock:
            self._done.append(self._ended(replica, code, from_file=True))
        return False

    def find(self, spec: LaunchSpec) -> Handle | None:
        """After a restart: the handle of the live replica launched for ``spec`` whose
        handle was never recorded (the control plane stopped between launch and
        commit), recognised by the exit file on its wrapper's command line; None when
        no such process runs. It is not watched until :meth:`adopt` is called."""
        exit_file = _exit_file(spec)
        found = find_wrapper(exit_file)
        if found is None:
            if read_exit_file(exit_file) is None:
                return None
            # It ran and ended while no one watched: a handle without a process, whose
            # adoption reports the exit recorded in the file.
            return Handle(
                job_id=spec.job_id,
                attempt=spec.attempt,
                replica=spec.replica,
                pid=0,
                pgid=0,
                started=0.0,
                exit_file=str(exit_file),
            )
        pid, stat, procs = found
        return Handle(
            job_id=spec.job_id,
            attempt=spec.attempt,
            replica=spec.replica,
            pid=pid,
            pgid=pid,
            started=stat.started,
            exit_file=str(exit_file),
            cgroup=str(procs.parent) if procs is not None else "",
        )

    def poll(self) -> list[ProcessExit]:
        """The replicas that ended since the last call, each reported once. Never
        blocks: the watcher thread has already reaped them."""
        with self._lock:
            done, self._done = self._done, []
        return done

    def close(self) -> None:
        """Stops the watcher thread and releases its descriptors; running replicas are
        left alone for a later executor to adopt. Children of this process that end
        afterwards stay zombies until adopted (and reaped) or until this process exits.
        Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._lock:
            for fd in self._by_fd:
                os.close(fd)
            self._by_fd.clear()
            self._epoll.close()
            os.close(self._wake_fd)
        if self._cgroups is not None:
            self._cgroups.close()

    # -- bookkeeping -----------------------------------------------------------------

    def _take_charge(
        self, handle: Handle, spec: LaunchSpec, pidfd: int | None, *, age: float
    ) -> None:
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

    # -- the watcher thread ----------------------------------------------------------

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
            if self._closed:
                return False
            timeout = self._plan(time.monotonic())
        events = self._epoll.poll(timeout)
        with self._lock:
            if self._closed:
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


def _exit_file(spec: LaunchSpec) -> Path:
    """Where the wrapper records the replica's exit: in its control directory, which
    its job cannot reach (a sandboxed job could otherwise plant a symlink there for
    the wrapper, which has the executor's rights, to write through)."""
    control = spec.control_dir or spec.workdir
    return control / f".exit-{spec.attempt}-{spec.replica}"


def _give(spec: LaunchSpec) -> None:
    """Gives the replica's uid its directory and checkpoint directory (not their
    contents, and never through a symlink), as an executor running as root must before
    the replica, which runs as that uid, can write there. The directory is mode 0711:
    bubblewrap enters it as root without capabilities, before it becomes the uid."""
    assert spec.sandbox is not None
    uid = NOBODY if spec.sandbox.uid is None else spec.sandbox.uid
    for directory in (spec.workdir, spec.checkpoint_dir):
        with contextlib.suppress(FileNotFoundError):
            os.chown(directory, uid, uid, follow_symlinks=False)
    os.chmod(spec.workdir, 0o711, follow_symlinks=False)
