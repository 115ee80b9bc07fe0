"""A replica's process on this machine: how it is started through the exit-recording
wrapper, how it is recognised again after a restart, and how its exit is read back.

The wrapper is a few lines of ``/bin/sh`` (about a millisecond, where a Python wrapper
costs tens): it enters the replica's working directory, joins its memory cgroup, sets
the address-space backstop when asked, runs the command as a foreground child and
writes the child's exit status to the exit file. Its stdout and stderr are the
replica's log files, which the executor opens itself (:func:`open_log`): the job may
have left a symlink or a FIFO in its own directory under a log's name, and the wrapper
runs with the executor's rights, so the log is opened without following a link and
only when it is a regular file. The exit file lives in the replica's control
directory, which the job cannot reach. The wrapper is the process group (and session)
leader, so the executor's handle names it; a control plane that restarts finds the
status in the exit file although it was never the wrapper's parent.

Signals. A stop sends SIGTERM to the whole group, wrapper included. The wrapper has
``trap : TERM INT HUP`` — a handler, not ``trap ''``: an ignored signal would stay
ignored in the child across exec, while a caught one is reset to the default there (the
child also resets it explicitly). A shell defers its traps while it waits for a
foreground command, so the wrapper outlives the child and records its status. SIGKILL
kills the wrapper too, and then no exit file is written; the executor knows it sent
that SIGKILL. (A sandboxed command's other processes survive SIGTERM by design; see
:mod:`.sandbox`.)

Exit codes follow the shell: ``128 + N`` when the command was killed by signal ``N``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import signal
import stat
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aios.executors.base import Handle, LaunchSpec
from aios.executors.sandbox import default_path
from aios.executors.spawn import FileAction, posix_spawn

__all__ = [
    "WRAPPER",
    "ProcessStat",
    "encode",
    "environment",
    "exit_code_of",
    "find_wrapper",
    "has_ended",
    "identify",
    "open_log",
    "open_pidfd",
    "read_exit_file",
    "read_exit_record",
    "read_stat",
    "rss_by_group",
    "sandbox_started",
    "signal_group",
    "spawn",
    "stop_marker",
    "supervisor_environment",
]

WRAPPER = """trap : TERM INT HUP
if [ "$7" = 1 ]; then read _ <&3; fi
exec 3<&-
cd -- "$1" || exit 125
if [ -n "$6" ]; then
  (trap '' TERM INT HUP; read _ <&"$6"; kill -KILL 0) &
  l=$!
  trap 'kill -KILL $l 2>/dev/null; wait $l 2>/dev/null' EXIT
  eval "exec $6<&-"
fi
if [ -n "$2" ]; then echo $$ >"$2" || exit 125; fi
if [ "$3" != 0 ]; then ulimit -v "$3" || exit 125; fi
f=$4
c=${2%/*}
o=0
ooms() {
  n=0
  for e in "$c/memory.events" "$c/memory.oom_control"; do
    [ -r "$e" ] || continue
    while read -r k v; do [ "$k" = oom_kill ] && n=$v; done <"$e"
    return
  done
}
[ -n "$2" ] && ooms && o=$n
shift 7
(trap - TERM INT HUP; [ -e "$f.stop" ] && exit 143; exec "$@")
s=$?
[ -n "$c" ] && ooms && o=$((n - o)) || o=0
echo $s $o >"$f"
exit $s
"""
"""Arguments: workdir, cgroup.procs to join ("" for none), address-space limit in KiB
("0" for none), exit file, an empty argument (where earlier versions named a log;
:func:`find_wrapper` reads the positions), the lifeline's descriptor ("" for none), "1"
to wait at the gate on fd 3 (else "0"), then the command. A step that fails ends the
wrapper with status 125 before the command starts and without an exit file.

The lifeline is the read end of a pipe whose write end only the executor's process
holds. A child of the wrapper waits on it, outside the replica's cgroup, and kills the
wrapper's whole group when it reads end-of-file, that is when that process has died;
the wrapper ends and reaps that child when it exits itself (a container's first
process may never reap it). An executor whose replicas must not outlive it (a Ray
node's agent: a replica counted lost is retried elsewhere) gives one; the control
plane's own gives none, so that its replicas outlive it and are adopted.

A SIGTERM that reaches the group after the wrapper set its trap but before it forked the
command would be lost (the command did not exist yet). So a stop first creates the
marker ``<exit file>.stop``, then signals; the forked child restores the default
dispositions and only then looks for the marker, so it either sees the marker or
receives the signal.

The exit record is the command's status and the number of OOM kills its memory cgroup
counted while it ran (``memory.events`` on v2, ``memory.oom_control`` on v1; 0 without
a cgroup), read with shell builtins only: a control plane that was down when the
command ended finds the cgroup gone or reused, and still tells an OOM kill from any
other SIGKILL. A record of an earlier version holds the status alone.

The exit file is written with one ``write(2)`` of a few bytes and read only once the
wrapper has exited, so a reader never sees half a record; a temporary file and ``mv``
would cost a second fork and exec per replica (sh has no rename built in). A file
without its final newline is no record."""

_SHELL = "/bin/sh"
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_STDIN_NULL: list[FileAction] = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)]
_SAME_START = 1.0
"""Seconds within which two create times name the same process. A recycled pid needs
the whole pid space to wrap around first, which takes far longer than this, and the
boot time that create times are counted from is only known to the second."""
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Signals the control plane may ignore (Python ignores SIGPIPE and SIGXFSZ) are reset
# to their defaults in the wrapper: ignored dispositions would pass on to the command.
_DEFAULT_SIGNALS = tuple(
    s for s in signal.Signals if s < signal.SIGRTMIN and s not in (signal.SIGKILL, signal.SIGSTOP)
)


def environment(
    spec: LaunchSpec, job_dir: Path | None = None, gpus_visible: str | None = None
) -> dict[str, str]:
    """The job's whole environment: ``PATH``, ``LANG`` and ``HOME`` defaults (its
    image's configuration over them), the variables its spec names, then those that
    describe its allocation (last, so a job cannot claim GPUs or cores it was not
    given). Nothing of the executor's own environment gets in. ``job_dir`` is where the
    job sees its directory (default: ``spec.workdir``) and ``gpus_visible`` what it
    sees as ``CUDA_VISIBLE_DEVICES`` (default: the allocated indices)."""
    inside = job_dir or spec.workdir
    env = {"PATH": default_path(spec.sandbox), "LANG": "C.UTF-8", "HOME": str(inside)}
    if spec.sandbox is not None:
        env.update(spec.sandbox.image_env)
    env.update(spec.env)
    env.update(_allocation(spec, inside))
    env["CUDA_VISIBLE_DEVICES"] = (
        gpus_visible if gpus_visible is not None else ",".join(map(str, spec.gpus))
    )
    return env


def supervisor_environment(spec: LaunchSpec) -> dict[str, str]:
    """The environment of what runs outside a sandbox around its command (the wrapper,
    the supervisor): a ``PATH``, the allocation's variables and ``supervisor_env`` —
    never the job's own variables, which could name a library to preload into a process
    with the executor's rights. ``LANG`` only for a supervisor (Python, which reads
    and writes text): the tools of the sandbox's chain would load its locale's dozens
    of files in every sandbox, to print messages nobody reads."""
    env = {"PATH": default_path(None)}
    if spec.supervisor:
        env["LANG"] = "C.UTF-8"
    env.update(_allocation(spec, spec.workdir))
    env.update(spec.supervisor_env)
    return env


def _allocation(spec: LaunchSpec, inside: Path) -> dict[str, str]:
    checkpoint = spec.checkpoint_dir
    if checkpoint.is_relative_to(spec.workdir):
        checkpoint = inside / checkpoint.relative_to(spec.workdir)
    return {
        "AIOS_JOB_ID": spec.job_id,
        "AIOS_ATTEMPT": str(spec.attempt),
        "AIOS_REPLICA": str(spec.replica),
        "AIOS_JOB_DIR": str(inside),
        "AIOS_CHECKPOINT_DIR": str(checkpoint),
        "AIOS_NODE": spec.node,
        "AIOS_CORES": ",".join(map(str, spec.cores)),
        "AIOS_GPUS": ",".join(map(str, spec.gpus)),
        "AIOS_MEMORY": str(spec.memory),
    }


def encode(env: Mapping[str, str]) -> dict[bytes, bytes]:
    """``env`` as the OS holds it, for :func:`spawn`."""
    return {os.fsencode(key): os.fsencode(value) for key, value in env.items()}


def open_log(path: Path) -> int:
    """A descriptor appending to the log file ``path`` (made, mode 0644, when missing),
    never through a symlink and only to a regular file: a job may leave anything under
    a log's name in its own directory. Raises OSError naming the path otherwise."""
    try:
        fd = os.open(path, _LOG_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(exc.errno, f"{path} is a symlink; refusing to follow it") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def spawn(
    command: Sequence[str],
    *,
    workdir: Path,
    stdout: int,
    stderr: int,
    env: Mapping[bytes, bytes],
    exit_file: Path,
    cgroup_procs: Path | None = None,
    address_space_kib: int = 0,
    cores: Collection[int] = (),
    pass_fds: Sequence[int] = (),
    lifeline: int | None = None,
) -> tuple[int, float]:
    """Starts ``command`` under the wrapper in a new session (pgid = sid = pid) and
    returns, once the wrapper has been exec'd, its pid and its create time as
    :func:`read_stat` gives it. stdin is /dev/null; ``stdout`` and ``stderr`` are
    descriptors (from :func:`open_log`) that become its 1 and 2. ``pass_fds`` become
    descriptors 4, 5, … of the wrapper, and of what it runs; no other descriptor of
    this process reaches it (where the C library can close them). With
    ``cores``, the wrapper is pinned to those cores before it starts anything: it
    waits at a gate (the read end of a pipe, as fd 3) until this function has set its
    affinity and closed the write end, so every process of the replica inherits the
    affinity. (Pinning the calling thread around ``posix_spawn`` instead would move it
    to the replica's core and make it wait there for its turn, with the interpreter
    lock held, whenever that core is busy.) ``lifeline`` is the read end of the pipe
    that ends the replica when this process dies (see :data:`WRAPPER`); it follows the
    ``pass_fds`` and reaches only the wrapper. Raises OSError when the wrapper cannot be
    started or pinned (it is killed then)."""
    actions: list[FileAction] = [
        *_STDIN_NULL,
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_DUP2, stderr, 2),
    ]
    argv = [
        _SHELL,
        "-c",
        WRAPPER,
        "aios-replica",
        str(workdir),
        str(cgroup_procs) if cgroup_procs is not None else "",
        str(address_space_kib),
        str(exit_file),
        "",
        "" if lifeline is None else str(4 + len(pass_fds)),
        "1" if cores else "0",
        *command,
    ]
    gate = None
    passed = [*pass_fds] if lifeline is None else [*pass_fds, lifeline]
    top = 4 + len(passed)
    lifted: dict[int, int] = {}
    try:
        if cores:
            # Both ends close on exec; the copy dup2 makes as fd 3 stays open in the child.
            gate = os.pipe2(os.O_CLOEXEC)
        # The child's dup2s run in order: a source numbered like an earlier target would
        # be overwritten before it is copied, so such sources are copied above them all.
        for fd in ([gate[0]] if gate else []) + passed:
            if fd < top and fd not in lifted:
                lifted[fd] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, top)
        if gate is not None:
            actions.append((os.POSIX_SPAWN_DUP2, lifted.get(gate[0], gate[0]), 3))
        for number, fd in enumerate(passed, start=4):
            actions.append((os.POSIX_SPAWN_DUP2, lifted.get(fd, fd), number))
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        pid = posix_spawn(
            _SHELL,
            argv,
            env,
            file_actions=actions,
            setsid=True,
            setsigmask=(),
            setsigdef=_DEFAULT_SIGNALS,
            close_from=top if gate is not None or passed else 3,
        )
        after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        if gate is not None:
            try:
                os.sched_setaffinity(pid, cores)
            except BaseException:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise
    finally:
        for copy in lifted.values():
            os.close(copy)
        if gate is not None:
            os.close(gate[1])  # opens the gate
            os.close(gate[0])
    # The kernel stamps the child's start (in clock ticks since boot) during the fork,
    # between our two readings of the same clock: when both fall in one tick, that is
    # the tick. Otherwise ask /proc, which right after an exec can block for a
    # millisecond.
    tick = 1_000_000_000 // _CLOCK_TICKS
    if before // tick == after // tick:
        return pid, before // tick / _CLOCK_TICKS + _boot_time()
    stat = read_stat(pid)  # an unreaped child always has one
    return pid, stat.started if stat is not None else after / 1e9 + _boot_time()


@dataclass(frozen=True, slots=True)
class ProcessStat:
    """What ``/proc/<pid>/stat`` says about a process."""

    state: str
    """``R``, ``S``, ``D``, … ; ``Z`` for a zombie (ended, not yet reaped)."""
    pgid: int
    sid: int
    started: float
    """Create time in seconds since the epoch, computed as psutil computes it. The boot
    time it adds is whole seconds, so it is only good for recognising the process."""
    since_boot: float
    """Create time in seconds since boot, precise to a clock tick."""
    rss: int
    """Resident set size in bytes."""

    @property
    def ended(self) -> bool:
        return self.state in ("Z", "X", "x")

    @property
    def age(self) -> float:
        """Seconds since the process was created."""
        return time.clock_gettime(time.CLOCK_BOOTTIME) - self.since_boot


def read_stat(pid: int) -> ProcessStat | None:
    """Returns the stat of ``pid``, or None when no such process exists."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    since_boot = int(fields[19]) / _CLOCK_TICKS
    return ProcessStat(
        state=fields[0].decode(),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        started=since_boot + _boot_time(),
        since_boot=since_boot,
        rss=int(fields[21]) * _PAGE_SIZE,
    )


def identify(handle: Handle) -> ProcessStat | None:
    """The stat of the handle's process if its pid still names it (same group leader,
    same create time); None when it is gone or the pid now names another process."""
    stat = read_stat(handle.pid)
    if stat is None or stat.pgid != handle.pgid:
        return None
    return stat if abs(stat.started - handle.started) < _SAME_START else None


def has_ended(handle: Handle) -> bool:
    """True once the handle's process has exited (a zombie child of this process counts
    as ended, and is left unreaped)."""
    try:
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, handle.pid, flags) is not None
    except ChildProcessError:
        stat = identify(handle)
        return stat is None or stat.ended


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``; None when the process is gone or the kernel has no pidfds
    (Linux before 5.3, or a seccomp filter that forbids them)."""
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def signal_group(pgid: int, sig: int) -> None:
    """Sends ``sig`` to process group ``pgid``; a group that is gone is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def rss_by_group(pgids: Collection[int]) -> dict[int, int]:
    """Returns the summed resident memory, in bytes, of the processes of each group in
    ``pgids``, found by one pass over /proc. Membership by group rather than by
    parentage also counts orphans that were reparented to init. Pages shared between
    processes are counted once per process."""
    totals = dict.fromkeys(pgids, 0)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is None:
            continue
        pgid = int(fields[2])
        if pgid in totals:
            totals[pgid] += int(fields[21]) * _PAGE_SIZE
    return totals


def sandbox_started(pgid: int) -> bool:
    """True once the command of the sandboxed replica that leads group ``pgid`` exists
    (or has ended): a process of the group that its innermost PID namespace numbers 2,
    the first child of that namespace's init (:mod:`.sandbox`). One pass over /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is None or int(fields[2]) != pgid:
            continue
        nspid = _namespace_pids(int(name))
        if len(nspid) >= 2 and nspid[-1] == 2:
            return True
    return False


def _namespace_pids(pid: int) -> list[int]:
    """The ``NSpid`` line of ``/proc/<pid>/status``: the process's pid in each PID
    namespace it is in, outermost first."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return [int(field) for field in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def read_exit_file(path: str | Path) -> int | None:
    """Returns the exit status the wrapper recorded, or None when there is no complete
    record (the wrapper was killed first, or the file is not there)."""
    record = read_exit_record(path)
    return None if record is None else record[0]


def read_exit_record(path: str | Path) -> tuple[int, int] | None:
    """The exit status the wrapper recorded and the OOM kills its cgroup counted while
    the command ran (0 in a record without the count), or None when there is no
    complete record."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, 64)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not data.endswith(b"\n"):
        return None
    try:
        fields = [int(field) for field in data.split()]
    except ValueError:
        return None
    if len(fields) == 1:
        return fields[0], 0
    if len(fields) == 2:
        return fields[0], fields[1]
    return None


def stop_marker(exit_file: str | Path) -> str:
    """The file whose existence tells a wrapper not to start its command."""
    return f"{exit_file}.stop"


def find_wrapper(exit_file: Path) -> tuple[int, ProcessStat, Path | None] | None:
    """The live wrapper that will write ``exit_file`` — its pid, its stat and the
    cgroup.procs file it joined (None: none) — found by one pass over the command lines
    in /proc; None when no such process runs. A wrapper is recognised by its name
    argument and the positions of its first arguments, which every version of
    :data:`WRAPPER` keeps, not by its script: one started by an earlier version of the
    control plane is found too."""
    shell, name = os.fsencode(_SHELL), b"aios-replica"
    target = os.fsencode(str(exit_file))
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        # sh -c SCRIPT aios-replica WORKDIR PROCS KIB EXIT_FILE …
        argv = cmdline.split(b"\0", 8)
        if len(argv) < 9 or argv[:2] != [shell, b"-c"] or argv[3] != name:
            continue
        if argv[7] != target:
            continue
        pid = int(entry)
        stat = read_stat(pid)
        if stat is None or stat.ended or stat.pgid != pid:
            continue
        procs = argv[5]
        return pid, stat, Path(os.fsdecode(procs)) if procs else None
    return None


def exit_code_of(status: int) -> int:
    """Turns a ``waitpid`` status into the shell's convention: the exit code, or
    ``128 + N`` for death by signal ``N``."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name: index 0 is the state
    (field 3 of proc(5)), so field ``n`` is at ``n - 3``."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name is in parentheses and may itself contain spaces or ")".
    return data[data.rfind(b")") + 2 :].split()


class _BootTime:
    """The boot time from /proc/stat, as psutil reads it, re-read at most once a second
    (it moves when the wall clock is stepped)."""

    def __init__(self) -> None:
        self._value = 0.0
        self._read_at = -math.inf

    def __call__(self) -> float:
        now = time.monotonic()
        if now - self._read_at > 1.0:
            with open("/proc/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime"):
                        self._value = float(line.split()[1])
                        break
            self._read_at = now
        return self._value


_boot_time = _BootTime()
