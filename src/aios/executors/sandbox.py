"""The sandbox a replica's command runs in: bubblewrap, behind util-linux's ``unshare``.

What a sandboxed command sees (``docs/sandbox.md`` says why bubblewrap, and what each
piece costs):

- its own mount namespace: the host's root read-only (or an image's root), a private
  ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/dev`` (holding only its own GPUs' device
  nodes), its own ``/proc``; the control plane's home, the home of the user running it
  and the data repository are empty directories, so every other job's directory is absent; its own
  job directory is bound read-write at the same path (at ``/job`` in an image); its
  dataset inputs, which the stage wrapper materialised in the control plane's own
  directory for the job, are bound read-only from there: at the same path, or at
  :data:`IMAGE_INPUTS` in an image, where the link ``inputs`` in its directory points.
  Nothing is ever bound from a path in the job's directory but the directory itself:
  the sandbox is built with the control plane's rights, and a link the job left there
  would bind whatever it names;
- its own PID, IPC and UTS namespaces: it cannot see or signal another job or the
  control plane;
- the machine's network, or with ``network="none"`` a loopback of its own;
- a non-root uid with no capabilities and no new privileges: its tenant's when the
  executor runs as root, the executor's own (in a user namespace) when it does not;
- exactly the environment its spec names, read from a descriptor so that no value
  shows in ``/proc/*/cmdline``, and set only in processes that run as the tenant: an
  unprivileged bubblewrap sets it (``--clearenv``, then ``--setenv`` for each variable,
  read with ``--args``); as root, bubblewrap and ``setpriv`` run with an empty
  environment and a shell sets it after the drop (a job's ``LD_PRELOAD`` would
  otherwise run its code as root).

The shape of the process chain, and why:

- ``unshare --pid --fork --kill-child`` first. A stop sends SIGTERM to the replica's
  process group, and the command must get it while the processes that report its exit
  survive it. bubblewrap's monitor process has the default disposition and would die
  at once, ending the replica before its grace. As the first process of a PID
  namespace of its own it receives no signal from outside that it has no handler for,
  and ``unshare`` blocks SIGTERM and SIGINT while it waits, so both outlive the signal
  while the command gets it; the exit status travels back unchanged (``128 + N`` for
  death by signal ``N``). ``--kill-child`` and ``--die-with-parent`` take the sandbox
  down with the wrapper, and the end of a PID namespace's first process kills
  everything left in it, so no process of a replica outlives it.
- As root (one uid per tenant): bubblewrap itself runs as root, so that the paths it
  binds are looked up with root's rights (this machine's Python lives under ``/root``,
  mode 0700, and so may the control plane's home), with every capability dropped but
  the three ``setpriv`` needs; ``setpriv`` then becomes the tenant's uid and gid (no
  supplementary groups, no new privileges, an empty bounding set) and runs a shell
  that reads the job's environment and executes the command. In an image, whose
  root holds no ``setpriv``, an outer bubblewrap (root, with an empty environment)
  binds the image and the job directory under its private ``/tmp``, ``setpriv``
  becomes the tenant there, and an inner bubblewrap (unprivileged, in a user
  namespace) runs the command in the image.
- Not as root: ``unshare`` also makes a user namespace (``--map-current-user``) and
  bubblewrap runs unprivileged in a further one.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aios.errors import InvalidInput
from aios.executors.base import LaunchSpec, SandboxSpec

__all__ = [
    "ARGS_FD",
    "IMAGE_INPUTS",
    "IMAGE_JOB_DIR",
    "Sandbox",
    "SandboxUnavailable",
    "default_path",
    "inputs_source",
]

ARGS_FD = 4
"""The first descriptor bubblewrap reads its arguments from (``--args``); an image's
inner bubblewrap reads the next one."""
IMAGE_JOB_DIR = "/job"
"""Where the job's directory appears inside an image: an image's root is read-only, so
the host path's parents could not be made in it."""
IMAGE_INPUTS = "/.aios/inputs"
"""Where a job's dataset inputs appear inside an image (the host path of the control
plane's directory could not be made there either)."""
INPUTS = "inputs"
NOBODY = 65534
"""The uid a root executor runs a sandbox as when its spec names none."""
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GPU_CONTROL = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
_PRIVATE = (Path("/tmp"), Path("/var/tmp"))
_SHM = ("--perms", "01777", "--tmpfs", "/dev/shm")
"""POSIX shared memory (PyTorch's DataLoader, joblib, multiprocessing) as on the host:
anyone may write, each their own; its pages count against the job's memory limit."""
_SETPRIV_CAPS = (
    "--cap-drop",
    "ALL",
    *(flag for cap in ("SETUID", "SETGID", "SETPCAP") for flag in ("--cap-add", f"CAP_{cap}")),
)
"""A root bubblewrap keeps only what ``setpriv`` needs to become the tenant."""
_SHELL = "/bin/sh"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGE = Path("/tmp/.aios")
"""Where an image's outer bubblewrap puts what the inner one binds."""


class SandboxUnavailable(OSError):
    """This machine cannot run sandboxes: a tool is missing, or namespaces are not
    allowed here. The message says which."""


def default_path(sandbox: SandboxSpec | None) -> str:
    """``PATH`` for a job that names none: its image's, or the directory of the Python
    that runs AIOS (so ``python`` in a job is the one with AIOS installed) before the
    system's."""
    if sandbox is not None and sandbox.rootfs is not None:
        return sandbox.image_env.get("PATH", _SYSTEM_PATH)
    return f"{os.path.dirname(sys.executable)}:{_SYSTEM_PATH}"


@dataclass(frozen=True)
class Sandbox:
    """How this machine builds sandboxes. ``hidden`` are directories every sandbox sees
    empty (the control plane's home, the data repository, the user's home: see
    :meth:`detect`); ``runtime`` are directories of the Python installation that jobs
    need even where they lie under a hidden one; ``gpu_minors`` maps a GPU index to the
    minor number of its ``/dev/nvidiaN`` node (the index itself when absent);
    ``gpu_uuids`` maps it to its UUID. ``root`` says whether the executor runs as root
    (each sandbox then runs as its spec's uid)."""

    bwrap: str
    unshare: str
    setpriv: str = "setpriv"
    hidden: tuple[Path, ...] = ()
    runtime: tuple[Path, ...] = ()
    gpu_minors: Mapping[int, int] = field(default_factory=dict)
    gpu_uuids: Mapping[int, str] = field(default_factory=dict)
    root: bool = field(default_factory=lambda: os.geteuid() == 0)
    _masked: dict[tuple[tuple[Path, ...], tuple[Path, ...]], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """The arguments of :meth:`_masks_and_runtime` by (hidden, existing masks)."""

    @classmethod
    def detect(cls, hidden: Iterable[Path | str] = ()) -> Sandbox:
        """The sandbox of this machine, hiding ``hidden`` besides the running user's
        home; raises SandboxUnavailable (naming what is missing) when a tool is not
        installed or namespaces cannot be made here (it runs one sandboxed ``true`` to
        find out, a few milliseconds)."""
        tools = {}
        for tool, package in (("bwrap", "bubblewrap"), ("unshare", "util-linux")):
            found = shutil.which(tool)
            if found is None:
                raise SandboxUnavailable(
                    f"{tool} is not installed (Debian: apt-get install {package})"
                )
            tools[tool] = found
        setpriv = shutil.which("setpriv")
        if os.geteuid() == 0 and setpriv is None:
            raise SandboxUnavailable("setpriv is not installed (Debian: util-linux)")
        home = Path(os.path.expanduser("~"))
        paths = [Path(p).absolute() for p in hidden]
        if home != Path("/"):
            paths.append(home)
        minors, uuids = _gpus()
        sandbox = cls(
            bwrap=tools["bwrap"],
            unshare=tools["unshare"],
            setpriv=setpriv or "setpriv",
            hidden=tuple(dict.fromkeys(paths)),
            runtime=_runtime_paths(),
            gpu_minors=minors,
            gpu_uuids=uuids,
        )
        sandbox.probe()
        return sandbox

    def probe(self) -> None:
        """Runs ``true`` in a sandbox without a network; raises SandboxUnavailable with
        bubblewrap's complaint when that fails."""
        spec = LaunchSpec(
            job_id="probe",
            attempt=0,
            replica=0,
            command=["true"],
            workdir=Path("/"),
            stdout=Path(os.devnull),
            stderr=Path(os.devnull),
            checkpoint_dir=Path("/"),
            sandbox=SandboxSpec(network="none"),
        )
        with self.argument_fds(spec, {"PATH": _SYSTEM_PATH}) as fds:
            try:
                done = subprocess.run(
                    [*self.prefix(spec, fds), "true"],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=30,
                    pass_fds=fds,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SandboxUnavailable(f"cannot run a sandbox here: {exc}") from None
        if done.returncode != 0:
            complaint = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
            raise SandboxUnavailable(f"cannot run a sandbox here: {complaint}")

    # -- the command line ------------------------------------------------------------
    def prefix(self, spec: LaunchSpec, fds: Sequence[int] | None = None) -> list[str]:
        """The argv that runs a command in ``spec``'s sandbox: append the command. The
        blobs of :meth:`arguments` must be readable on descriptors ``fds`` (default
        :data:`ARGS_FD` and the next) when it starts."""
        sandbox = spec.sandbox or SandboxSpec()
        first, second = fds if fds is not None else (ARGS_FD, ARGS_FD + 1)
        unshare = [self.unshare, "--pid", "--fork", "--kill-child"]
        if not self.root:
            unshare += ["--user", "--map-current-user"]
            return [*unshare, "--", self.bwrap, "--args", str(first), "--"]
        uid = NOBODY if sandbox.uid is None else sandbox.uid
        setpriv = [
            self.setpriv,
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
        outer = [*unshare, "--", self.bwrap, "--args", str(first), "--", *setpriv]
        if sandbox.rootfs is None:
            return [*outer, _SHELL, "-c", _apply_env(second), "sh"]
        return [*outer, self.bwrap, "--args", str(second), "--"]

    @contextlib.contextmanager
    def argument_fds(self, spec: LaunchSpec, env: Mapping[str, str]) -> Iterator[tuple[int, int]]:
        """Two descriptors, open for reading, holding :meth:`arguments` (the second
        empty unless an inner bubblewrap needs it); closed on leaving."""
        blobs = self.arguments(spec, env)
        fds: list[int] = []
        try:
            for blob in (*blobs, b"")[:2]:
                fd = os.memfd_create("aios-sandbox", os.MFD_CLOEXEC)
                fds.append(fd)
                os.write(fd, blob)
                os.lseek(fd, 0, os.SEEK_SET)
            yield fds[0], fds[1]
        finally:
            for fd in fds:
                os.close(fd)

    def job_dir(self, spec: LaunchSpec) -> Path:
        """Where the job's directory is inside its sandbox."""
        if spec.sandbox is not None and spec.sandbox.rootfs is not None:
            return Path(IMAGE_JOB_DIR)
        return spec.workdir

    def gpu_visible(self, gpus: Sequence[int]) -> str:
        """``CUDA_VISIBLE_DEVICES`` inside a sandbox that holds only ``gpus``' device
        nodes: their UUIDs where known (CUDA numbers the devices it can open from 0, so
        the host's indices would name the wrong ones), else 0..n-1."""
        if gpus and all(g in self.gpu_uuids for g in gpus):
            return ",".join(self.gpu_uuids[g] for g in gpus)
        return ",".join(str(n) for n in range(len(gpus)))

    def arguments(self, spec: LaunchSpec, env: Mapping[str, str]) -> tuple[bytes, ...]:
        """bubblewrap's arguments for ``spec`` with environment ``env``, NUL-separated
        as ``--args`` reads them: one blob, or two when run as root: for an image the
        outer bubblewrap's, then the inner one's; on the host's root bubblewrap's, then
        ``env`` as the shell script that sets it once the command runs as the tenant
        (:func:`_apply_env`). Raises InvalidInput for a variable that no shell
        takes."""
        sandbox = spec.sandbox or SandboxSpec()
        if self.root and sandbox.rootfs is not None:
            return _blob(self._stage(spec)), _blob(self._image(spec, env, staged=True))
        if sandbox.rootfs is not None:
            return (_blob(self._image(spec, env, staged=False)),)
        if self.root:
            return _blob(self._host(spec, {})), _exports(env)
        return (_blob(self._host(spec, env)),)

    def _namespaces(self, spec: LaunchSpec, *, user: bool) -> list[str]:
        sandbox = spec.sandbox or SandboxSpec()
        args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "aios"]
        if user:
            args[:0] = ["--unshare-user", "--disable-userns"]
        if sandbox.network == "none":
            args.append("--unshare-net")
        return [*args, "--die-with-parent"]

    def _common(self, spec: LaunchSpec) -> list[str]:
        args = ["--dev", "/dev", *_SHM, "--proc", "/proc"]
        for private in _PRIVATE:  # as the host's: anyone may write, each their own
            args += ["--perms", "01777", "--tmpfs", str(private)]
        for device in self._gpu_devices(spec.gpus):
            args += ["--dev-bind", device, device]
        return args

    def _host(self, spec: LaunchSpec, env: Mapping[str, str]) -> list[str]:
        """A sandbox on the host's root, read-only."""
        sandbox = spec.sandbox or SandboxSpec()
        args = self._namespaces(spec, user=not self.root)
        if self.root:
            args += _SETPRIV_CAPS
        args += ["--ro-bind", "/", "/", *self._common(spec)]
        hidden = (*self.hidden, *(Path(h) for h in sandbox.hidden))
        # Which hidden directories exist is asked each time (one may be made later);
        # what follows from that is computed once per answer.
        masks = tuple(h for h in dict.fromkeys(hidden) if h.is_dir() and not _under(h, _PRIVATE))
        key = (hidden, masks)
        masked = self._masked.get(key)
        if masked is None:
            masked = self._masked[key] = tuple(self._masks_and_runtime(masks, hidden))
        args += masked
        every = [*masks, *_PRIVATE]
        for mount in sandbox.mounts:
            args += [*_dirs(Path(mount), every), "--ro-bind", mount, mount]
        if spec.workdir != Path("/"):
            workdir = str(spec.workdir)
            args += [*_dirs(spec.workdir, every), "--bind", workdir, workdir]
            args += ["--chdir", workdir]
        inputs = inputs_source(spec)
        if inputs is not None:  # at its own path, in the home's mask: nothing the job made
            args += [*_dirs(inputs, every), "--ro-bind", str(inputs), str(inputs)]
        return [*args, *_environment(env)]

    def _stage(self, spec: LaunchSpec) -> list[str]:
        """The outer, root bubblewrap of an image: the host's root with the image, the
        job's directory and the mounts bound under a private ``/tmp``, where the
        tenant's inner bubblewrap can reach them."""
        sandbox = spec.sandbox or SandboxSpec()
        assert sandbox.rootfs is not None
        args = ["--unshare-pid", "--as-pid-1", "--die-with-parent", *_SETPRIV_CAPS]
        if sandbox.network == "none":
            args.append("--unshare-net")
        # The host's /proc, writable, not a fresh one: the inner bubblewrap mounts a proc
        # of its own, which the kernel allows in a user namespace only where a proc is
        # fully visible already, and bubblewrap covers parts of any proc it mounts. No
        # command of the job runs here: only setpriv and the inner bubblewrap do.
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--bind", "/proc", "/proc", "--clearenv"]
        args += ["--tmpfs", "/tmp", "--perms", "0755", "--dir", str(_STAGE)]
        args += ["--ro-bind", str(sandbox.rootfs), str(_STAGE / "root")]
        if spec.workdir != Path("/"):
            args += ["--bind", str(spec.workdir), str(_STAGE / "job")]
        inputs = inputs_source(spec)
        if inputs is not None:
            args += ["--ro-bind", str(inputs), str(_STAGE / INPUTS)]
        for n, mount in enumerate(sandbox.mounts):
            args += ["--ro-bind", mount, str(_STAGE / "mounts" / str(n))]
        return args

    def _image(self, spec: LaunchSpec, env: Mapping[str, str], *, staged: bool) -> list[str]:
        """An unprivileged bubblewrap in an image; ``staged``: its sources are where
        :meth:`_stage` put them. The sandbox's root is bubblewrap's own tmpfs, holding
        each top-level entry of the image bound read-only, so that ``/job``, ``/dev``,
        ``/proc`` and ``/tmp`` can be made in it whatever the image holds; it is made
        read-only last."""
        sandbox = spec.sandbox or SandboxSpec()
        assert sandbox.rootfs is not None
        rootfs = _STAGE / "root" if staged else sandbox.rootfs
        args = self._namespaces(spec, user=True)
        if staged and sandbox.network == "none":
            args.remove("--unshare-net")  # the outer one has none already
        ours = {"dev", "proc", "tmp", IMAGE_JOB_DIR.strip("/"), IMAGE_INPUTS.split("/")[1]}
        for entry in sorted(os.scandir(sandbox.rootfs), key=lambda e: e.name):
            if entry.name in ours:
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), f"/{entry.name}"]
            else:
                args += ["--ro-bind", str(rootfs / entry.name), f"/{entry.name}"]
        args += ["--dev", "/dev", *_SHM, "--proc", "/proc", "--perms", "01777", "--tmpfs", "/tmp"]
        if (sandbox.rootfs / "var" / "tmp").is_dir():
            args += ["--perms", "01777", "--tmpfs", "/var/tmp"]
        for device in self._gpu_devices(spec.gpus):
            args += ["--dev-bind", device, device]
        for n, mount in enumerate(sandbox.mounts):
            source = str(_STAGE / "mounts" / str(n)) if staged else mount
            args += ["--ro-bind", source, mount]
        if spec.workdir != Path("/"):
            source = str(_STAGE / "job") if staged else str(spec.workdir)
            args += ["--bind", source, IMAGE_JOB_DIR]
            args += ["--chdir", IMAGE_JOB_DIR]
        inputs = inputs_source(spec)
        if inputs is not None:
            source = str(_STAGE / INPUTS) if staged else str(inputs)
            args += ["--dir", os.path.dirname(IMAGE_INPUTS), "--ro-bind", source, IMAGE_INPUTS]
        args += ["--remount-ro", "/"]
        return [*args, *_environment(env)]

    def _masks_and_runtime(self, masks: Sequence[Path], hidden: Sequence[Path]) -> list[str]:
        """bubblewrap's arguments that make each of ``masks`` an empty directory and
        bind again the runtime directories they hide."""
        args: list[str] = []
        for mask in sorted(masks, key=lambda p: len(p.parts)):
            args += [*_dirs(mask, masks), "--tmpfs", str(mask)]
        every = [*masks, *_PRIVATE]
        for path in self._kept_runtime(every, hidden):
            args += [*_dirs(path, every), "--ro-bind", str(path), str(path)]
        return args

    def _kept_runtime(self, masks: Sequence[Path], hidden: Sequence[Path]) -> list[Path]:
        """The runtime directories a mask hides, which are bound again; never one that
        holds a hidden directory (that would show it again), nor one inside another
        that is bound (it comes with it: each bind is a mount and its parents' ``--dir``
        a few more system calls in every sandbox). Outermost first: a deeper one bound
        before its parent would be covered by it."""
        kept = {
            path
            for path in self.runtime
            if any(path.is_relative_to(m) for m in masks)
            and not any(h.is_relative_to(path) for h in hidden)
        }
        outermost = {p for p in kept if not any(p != q and p.is_relative_to(q) for q in kept)}
        return sorted(outermost, key=lambda p: len(p.parts))

    def _gpu_devices(self, gpus: Sequence[int]) -> list[str]:
        if not gpus:
            return []
        devices = [f"/dev/{name}" for name in _GPU_CONTROL if os.path.exists(f"/dev/{name}")]
        for gpu in gpus:
            node = f"/dev/nvidia{self.gpu_minors.get(gpu, gpu)}"
            if os.path.exists(node):
                devices.append(node)
        return devices


def inputs_source(spec: LaunchSpec) -> Path | None:
    """Where the stage wrapper materialises ``spec``'s dataset inputs for its sandbox
    (``inputs`` in its control directory, out of the job's reach); None when it reads
    none."""
    if spec.sandbox is None or not spec.sandbox.inputs or spec.control_dir is None:
        return None
    return spec.control_dir / INPUTS


def _apply_env(fd: int) -> str:
    """What a root sandbox on the host's root runs as the tenant, after ``setpriv``: it
    reads the job's environment from descriptor ``fd`` (``export`` lines, see
    :func:`_exports`), closes it and runs the command with that environment. Every
    process before it (bubblewrap and ``setpriv``, which run as root) has an empty
    environment: a job's ``LD_PRELOAD``, ``LD_LIBRARY_PATH`` or ``GCONV_PATH`` would
    otherwise run the job's code as root before the drop. The shell adds nothing of
    its own (``PWD`` is unset). It runs about as long as a bare ``env`` would."""
    close = f"exec {fd}<&- && " if fd <= 9 else ""  # the shell names descriptors 0-9 only
    return f'unset PWD; . /dev/fd/{fd} && {close}exec "$@"'


def _exports(env: Mapping[str, str]) -> bytes:
    """``env`` as ``export`` lines of the shell, each value quoted. Raises InvalidInput
    for a name that is no shell variable's, or an ``OPTIND`` that is no number (the
    one value the shell checks)."""
    lines = []
    for key, value in env.items():
        if not _NAME.fullmatch(key):
            raise InvalidInput(f"env: {key[:64]!r} is not a valid variable name")
        if key == "OPTIND" and not value.isdigit():
            raise InvalidInput("env: OPTIND must be a number in a sandbox")
        lines.append(f"export {key}='" + value.replace("'", "'\\''") + "'\n")
    return os.fsencode("".join(lines))


def _blob(args: Sequence[str]) -> bytes:
    return os.fsencode("\0".join(args) + "\0") if args else b""


def _environment(env: Mapping[str, str]) -> list[str]:
    args = ["--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _dirs(dest: Path, masks: Iterable[Path]) -> list[str]:
    """``--dir`` (mode 0755) for each parent of ``dest`` inside the nearest mask that
    holds it: bubblewrap would make them mode 0700 as root, and a tenant could not
    pass through them."""
    return list(_parent_dirs(dest.parent, tuple(masks)))


@functools.lru_cache(maxsize=256)
def _parent_dirs(parent: Path, masks: tuple[Path, ...]) -> tuple[str, ...]:
    """:func:`_dirs` of every path in ``parent`` (every job's directory has the same
    parent: computed once)."""
    inside = [m for m in masks if parent.is_relative_to(m)]
    if not inside:
        return ()
    mask = max(inside, key=lambda m: len(m.parts))
    args: list[str] = []
    for directory in (*reversed(parent.parents), parent):
        if directory.is_relative_to(mask) and directory != mask:
            args += ["--perms", "0755", "--dir", str(directory)]
    return tuple(args)


def _runtime_paths() -> tuple[Path, ...]:
    """The directories of the running Python installation and its import path."""
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        *(p for p in sys.path if p),
    }
    paths = []
    for candidate in candidates:
        path = Path(candidate).absolute()
        if path.is_dir() and path != Path("/"):
            paths.append(path)
    return tuple(sorted(paths))


def _gpus() -> tuple[dict[int, int], dict[int, str]]:
    """The minor numbers and UUIDs of this machine's GPUs, from NVML (empty without
    one)."""
    minors: dict[int, int] = {}
    uuids: dict[int, str] = {}
    if not os.path.exists("/dev/nvidiactl"):
        return minors, uuids
    with contextlib.suppress(Exception):  # no NVML, or a driver without the calls
        import pynvml

        pynvml.nvmlInit()
        try:
            for index in range(pynvml.nvmlDeviceGetCount()):
                device = pynvml.nvmlDeviceGetHandleByIndex(index)
                minors[index] = int(pynvml.nvmlDeviceGetMinorNumber(device))
                uuid = pynvml.nvmlDeviceGetUUID(device)
                uuids[index] = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
        finally:
            pynvml.nvmlShutdown()
    return minors, uuids
