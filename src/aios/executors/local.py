"""The local executor: each replica is a process group on this machine, pinned to its
cores, held to its memory limit, shown only its GPUs, logged to its files, and watched
by one background thread (:mod:`.watcher`).

The wrapper, its signals and its exit file are described in :mod:`.process`; memory
isolation in :mod:`.isolation`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
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
    procs_file,
    remove_cgroup,
)
from aios.executors.process import (
    encode,
    environment,
    exit_code_of,
    find_wrapper,
    identify,
    open_log,
    open_pidfd,
    read_exit_file,
    signal_group,
    spawn,
    stop_marker,
    supervisor_environment,
)
from aios.executors.sandbox import NOBODY, Sandbox, SandboxUnavailable
from aios.executors.watcher import Watcher

__all__ = ["LocalExecutor"]


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
    ``lifeline`` ties every replica to this process: they are killed when it dies (a
    Ray node's agent, whose replicas are counted lost and retried elsewhere then); the
    control plane's executor goes without, so that its replicas outlive it and are
    adopted.

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
        lifeline: bool = False,
    ) -> None:
        self.sandbox = sandbox
        self.images = images
        self._lifeline: int | None = None
        if lifeline:
            # Neither end is ever closed: the process's death closes the write end,
            # and every replica's lifeline reads end-of-file then (.process.WRAPPER).
            self._lifeline, self._lifeline_writer = os.pipe2(os.O_CLOEXEC)
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
        self._watcher = Watcher(self._cgroups, on_exit, watchdog_interval)

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
        if self._watcher.closed:
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
                lifeline=self._lifeline,
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
        self._watcher.watch(handle, spec, open_pidfd(pid), age=0.0)
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
        self._watcher.stop(handle, reason, grace)

    def adopt(self, handle: Handle, spec: LaunchSpec) -> bool:
        """Takes charge of a replica launched by an earlier executor (an earlier control
        plane). The process is recognised by pid, process group and create time, so a
        recycled pid counts as gone. Alive: it is watched again, its time limit counted
        from its original start and its memory watchdog resumed, and True is returned.
        Gone: its exit (from the exit file; LOST when there is none) is queued for the
        next :meth:`poll` (``on_exit`` is not called: the caller knows) and False is
        returned."""
        if self._watcher.closed:
            raise RuntimeError("adopt() on a closed LocalExecutor")
        if self._watcher.watches(handle):
            return True
        pidfd = open_pidfd(handle.pid) if handle.pid > 0 else None
        stat = identify(handle) if handle.pid > 0 else None
        if stat is not None and not stat.ended:
            self._watcher.watch(handle, spec, pidfd, age=stat.age)
            return True
        if pidfd is not None:
            os.close(pidfd)
        code = None
        if stat is not None:  # a zombie that may be this process's own child
            signal_group(handle.pgid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(handle.pid, os.WNOHANG)
                if pid:
                    code = exit_code_of(status)
        self._watcher.report(handle, spec, code)
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
        return self._watcher.poll()

    def close(self) -> None:
        """Stops the watcher thread and releases its descriptors; running replicas are
        left alone for a later executor to adopt. Children of this process that end
        afterwards stay zombies until adopted (and reaped) or until this process exits.
        Idempotent."""
        if self._watcher.close() and self._cgroups is not None:
            self._cgroups.close()


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
