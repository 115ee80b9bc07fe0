"""Memory isolation for local replicas: one memory cgroup per replica where the control
plane may create cgroups (the unified v2 hierarchy, or the v1 memory controller of a
hybrid layout), otherwise an address-space rlimit as a backstop plus the executor's RSS
watchdog.

Detection looks for a place to create cgroups under the control plane's own: ``<own
cgroup>/aios``. In v2 that needs the memory controller enabled in the own cgroup's
``cgroup.subtree_control``, which the kernel refuses while processes live there (the
"no internal processes" rule). When the control plane is alone in its cgroup (a
systemd service with ``Delegate=yes``), it first moves itself into the leaf
``<own cgroup>/aios-control``, as delegated supervisors do; otherwise give it a
delegated, empty directory as ``cgroup_root``, or it falls back to rlimits.

Creating and removing a memory cgroup per replica costs about a millisecond, and each
removed one lingers in the kernel while pages are still charged to it. So a cgroup that
a replica leaves clean — no process inside, no OOM kill counted, next to no memory still
charged — is kept idle and given to the next replica with the same limit. A replica
thus inherits at most :data:`REUSE_CHARGE` bytes of (mostly reclaimable) pages, and
an OOM kill counted in its cgroup is always its own.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import signal
import threading
from pathlib import Path
from typing import Literal

from aios.errors import InvalidInput

__all__ = [
    "REUSE_CHARGE",
    "MemoryCgroups",
    "MemoryIsolation",
    "address_space_backstop",
    "oom_killed",
    "procs_file",
    "remove_cgroup",
]

MemoryIsolation = Literal["cgroup-v2", "cgroup-v1", "rlimit"]

REUSE_CHARGE = 1 << 20
"""The most memory in pages (anonymous and page cache, not kernel objects) still charged
to a cgroup whose replica ended for it to be reused."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_GIB = 1 << 30
_IDLE = 64
"""The most idle cgroups kept for reuse."""
_SLOT = re.compile(r"slot-(\d+)-\d+-\d+")
_INSTANCES = itertools.count()


class MemoryCgroups:
    """The directory under which one memory cgroup per replica is created."""

    def __init__(self, root: Path, version: Literal[1, 2]) -> None:
        self.root = root
        self.version = version
        self._lock = threading.Lock()
        self._idle: dict[int, list[Path]] = {}
        self._limits: dict[Path, int] = {}
        """The limit of each cgroup this instance made for reuse, idle or not."""
        self._made = 0
        self._prefix = f"slot-{os.getpid()}-{next(_INSTANCES)}"

    @property
    def mode(self) -> MemoryIsolation:
        return "cgroup-v2" if self.version == 2 else "cgroup-v1"

    @classmethod
    def at(cls, root: Path) -> MemoryCgroups:
        """Uses ``root`` (created if missing), a v2 directory when it has
        ``cgroup.controllers``, otherwise a v1 memory-controller directory. Raises
        InvalidInput when no limited cgroup can be created there."""
        try:
            root.mkdir(exist_ok=True)
            version: Literal[1, 2] = 2 if (root / "cgroup.controllers").exists() else 1
            if version == 2:
                _enable_memory(root)
            cgroups = cls(root, version)
            cgroups._probe()
        except OSError as e:
            raise InvalidInput(f"cgroup_root {root} cannot hold memory cgroups: {e}") from None
        return cgroups

    @classmethod
    def detect(cls) -> MemoryCgroups | None:
        """Finds a writable place for memory cgroups: v2 first, then the v1 memory
        controller; None when neither may be written."""
        own = _own_cgroups()
        for mount_root, mount_point, fstype, options in _cgroup_mounts():
            if fstype == "cgroup2" and "" in own:
                version: Literal[1, 2] = 2
                base = _inside(mount_point, mount_root, own[""])
            elif fstype == "cgroup" and "memory" in options and "memory" in own:
                version = 1
                base = _inside(mount_point, mount_root, own["memory"])
            else:
                continue
            try:
                if version == 2:
                    if "memory" not in _read(base / "cgroup.controllers").split():
                        continue
                    _enable_memory_beside_self(base)
                root = base / "aios"
                root.mkdir(exist_ok=True)
                if version == 2:
                    _enable_memory(root)
                cgroups = cls(root, version)
                cgroups._probe()
            except OSError:
                continue
            return cgroups
        return None

    def create(self, name: str, limit: int) -> Path:
        """Creates the cgroup ``name`` (made path-safe) limited to ``limit`` bytes,
        swap included, and returns its directory. A leftover empty cgroup of the same
        name is replaced; raises OSError when one with processes in it exists."""
        path = self.root / _UNSAFE.sub("_", name)
        try:
            os.mkdir(path)
        except FileExistsError:
            os.rmdir(path)  # EBUSY when still in use: that is an error of the caller
            os.mkdir(path)
        try:
            if self.version == 2:
                _write(path / "memory.max", limit)
                _write_if_present(path / "memory.swap.max", 0)
            else:
                _write(path / "memory.limit_in_bytes", limit)
                # Swap accounting may be off (no memsw files); swappiness 0 then keeps
                # the kernel from swapping this cgroup instead of killing it.
                if not _write_if_present(path / "memory.memsw.limit_in_bytes", limit):
                    _write_if_present(path / "memory.swappiness", 0)
        except OSError:
            os.rmdir(path)
            raise
        return path

    def acquire(self, limit: int) -> Path:
        """A cgroup limited to ``limit`` bytes for one replica: an idle one of that
        limit, or a new one. Give it back with :meth:`release`. Raises OSError when none
        can be created."""
        with self._lock:
            idle = self._idle.get(limit)
            if idle:
                return idle.pop()
            self._made += 1
            name = f"{self._prefix}-{self._made}"
        path = self.create(name, limit)
        with self._lock:
            self._limits[path] = limit
        return path

    def release(self, cgroup: Path) -> bool:
        """Takes back the cgroup of a replica that ended; True when it is kept for
        reuse. False (the caller removes it) when it is not one of :meth:`acquire`'s,
        when processes remain inside, when the OOM killer struck in it, when more than
        :data:`REUSE_CHARGE` bytes of pages are still charged to it, or when enough are
        idle."""
        limit = self._limits.get(cgroup)
        if limit is None or not _reusable(cgroup, self.version):
            self._limits.pop(cgroup, None)
            return False
        with self._lock:
            if sum(map(len, self._idle.values())) >= _IDLE:
                del self._limits[cgroup]
                return False
            self._idle.setdefault(limit, []).append(cgroup)
        return True

    def close(self) -> None:
        """Removes the idle cgroups."""
        with self._lock:
            idle = [path for paths in self._idle.values() for path in paths]
            self._idle.clear()
        for path in idle:
            self._limits.pop(path, None)
            with contextlib.suppress(OSError):
                os.rmdir(path)

    def _probe(self) -> None:
        path = self.create(f".probe-{os.getpid()}", 64 << 20)
        os.rmdir(path)
        self._sweep()

    def _sweep(self) -> None:
        """Removes the idle cgroups that control planes which no longer run left."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root):
                match = _SLOT.fullmatch(entry.name)
                if match is None or _alive(int(match[1])):
                    continue
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)  # fails while a replica still runs inside


def procs_file(cgroup: Path) -> Path:
    """The file a process writes its pid to in order to join ``cgroup``."""
    return cgroup / "cgroup.procs"


def oom_killed(cgroup: Path, exit_code: int | None) -> bool:
    """True when the kernel's OOM killer killed a process of ``cgroup`` (v2:
    ``memory.events``; v1: ``memory.oom_control``, or on kernels before 4.13 a hit limit
    in ``memory.failcnt`` together with death by SIGKILL)."""
    counters = _counters(cgroup / "memory.events") or _counters(cgroup / "memory.oom_control")
    if "oom_kill" in counters:
        return counters["oom_kill"] > 0
    try:
        failures = int(_read(cgroup / "memory.failcnt"))
    except (OSError, ValueError):
        return False
    return failures > 0 and exit_code == 128 + signal.SIGKILL


def _reusable(cgroup: Path, version: Literal[1, 2]) -> bool:
    try:
        if _read(procs_file(cgroup)).strip():
            return False
    except OSError:
        return False
    charged = _pages_charged(cgroup, version)
    if charged is None or charged > REUSE_CHARGE:
        return False
    counters = _counters(cgroup / "memory.events") or _counters(cgroup / "memory.oom_control")
    if "oom_kill" in counters:
        return counters["oom_kill"] == 0
    try:
        return int(_read(cgroup / "memory.failcnt")) == 0
    except (OSError, ValueError):
        return False


def _pages_charged(cgroup: Path, version: Literal[1, 2]) -> int | None:
    """The memory pages still charged to ``cgroup``: anonymous memory and page cache
    (tmpfs files included). Kernel memory is left out: when a sandboxed replica's
    wrapper exits, its namespaces and mounts are still being torn down, and their
    objects (about 600 KiB, freed within 100 ms here) would refuse a clean cgroup. None
    when the counters cannot be read."""
    stat = _counters(cgroup / "memory.stat")
    keys = ("anon", "file") if version == 2 else ("rss", "cache")
    if any(key not in stat for key in keys):
        return None
    return sum(stat[key] for key in keys)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_cgroup(cgroup: Path) -> bool:
    """Removes ``cgroup``; True when it is gone. When processes are still inside (killed
    but not yet dead, or escaped from the process group) they are sent SIGKILL and
    False is returned: call again later."""
    try:
        os.rmdir(cgroup)
    except FileNotFoundError:
        return True
    except OSError:
        with contextlib.suppress(OSError):
            for pid in _read(procs_file(cgroup)).split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
        return False
    return True


def address_space_backstop(memory: int) -> int:
    """The RLIMIT_AS, in bytes, set where no cgroup is available: twice the limit plus
    1 GiB. Address space is not memory (allocators and runtimes reserve far more than
    they touch), so this only stops runaway growth between two watchdog samples; the
    RSS watchdog enforces the limit itself."""
    return 2 * memory + _GIB


def _cgroup_mounts() -> list[tuple[str, Path, str, set[str]]]:
    """(root inside the hierarchy, mount point, fstype, super options) of each cgroup
    mount, cgroup2 first."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                mounts.append((fields[3], Path(fields[4]), tail[0], set(tail[2].split(","))))
    return sorted(mounts, key=lambda m: m[2] != "cgroup2")


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per controller; key "" is the v2 hierarchy."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
    return own


def _inside(mount_point: Path, mount_root: str, path: str) -> Path:
    """Where cgroup ``path`` shows under a mount of the hierarchy's ``mount_root``; the
    mount point itself when it does not show (a container's view)."""
    if mount_root != "/" and path.startswith(mount_root):
        path = path[len(mount_root) :]
    candidate = mount_point / path.lstrip("/")
    return candidate if candidate.is_dir() else mount_point


def _enable_memory(cgroup: Path) -> None:
    if "memory" not in _read(cgroup / "cgroup.subtree_control").split():
        _write(cgroup / "cgroup.subtree_control", "+memory")


def _enable_memory_beside_self(cgroup: Path) -> None:
    """Enables the memory controller for the children of this process's own v2
    cgroup, first moving this process into a leaf when it is the only one there."""
    try:
        _enable_memory(cgroup)
    except OSError as e:
        if e.errno != errno.EBUSY or _read(cgroup / "cgroup.procs").split() != [str(os.getpid())]:
            raise
        leaf = cgroup / "aios-control"
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", os.getpid())
        _enable_memory(cgroup)


def _counters(path: Path) -> dict[str, int]:
    try:
        text = _read(path)
    except OSError:
        return {}
    counters = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            counters[key] = int(value)
    return counters


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _write(path: Path, value: int | str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _write_if_present(path: Path, value: int | str) -> bool:
    try:
        _write(path, value)
    except FileNotFoundError:
        return False
    return True
