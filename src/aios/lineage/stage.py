"""The stage wrapper: ``python -I -m aios.lineage.stage [--private-inputs host|image]
CONTROL_DIR -- COMMAND…`` runs a job's command between its dataset inputs and outputs,
on the job's own node and under its own limits.

It is trusted code: the executor runs it outside the job's sandbox, with the control
plane's rights, around the sandboxed command (:mod:`aios.control.launching`). It reads
its plan from the job's control directory ``CONTROL_DIR`` (which the job cannot reach),
takes the repository's passphrase and object-store credentials from its own environment
(never the command's), and treats the job's own directory (its working directory) as
the job's: it makes its ``inputs`` and ``outputs`` afresh through directory descriptors,
never through a link the job left there.

1. Resolves each input reference to a version (once per job: a retry or another
   replica of a gang reads the same versions) and materialises it at ``inputs/NAME``
   in the job's directory. With ``--private-inputs`` (a sandboxed job) it materialises
   them in ``CONTROL_DIR/inputs`` instead, which the sandbox binds read-only, and makes
   ``inputs`` in the job's directory a link to where they appear in the sandbox: the
   same path on the host's root (``host``), :data:`~aios.executors.sandbox.IMAGE_INPUTS`
   in an image (``image``). The sandbox is built with the control plane's rights, so
   what it binds must never be a path the job could have replaced with a link.
2. When the job publishes outputs and allows reuse, looks for versions of every output
   published by an earlier run of the same command on the same input versions (the
   :func:`~aios.lineage.plan.cache_key` kept in their lineage). If all are there the
   command does not run: the job ends at once, naming them as its outputs.
3. Otherwise runs the command (``AIOS_INPUTS`` and ``AIOS_OUTPUTS`` are in its
   environment already). Signals reach the command from the executor (it signals the
   process group), so the wrapper only waits, and ends the way the command ended.
4. When the command succeeds, replica 0 publishes ``outputs/NAME`` as the next version
   of each output dataset, with the job, its inputs and the cache key as lineage. A
   file still written by a process the command left behind may change while it is
   read: the version is kept, marked not complete, and each such file is named by an
   ``aios: warning:`` line in the job's log.

What it did goes to ``data-result.json`` in the control directory. A reference that
does not resolve, a damaged input or a missing output directory fails the job with one
line on stderr, and nothing is published.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path

from aios.data.backend import Backend, FsspecBackend, LocalBackend
from aios.data.datasets import DatasetVersion, DataStore, is_dataset
from aios.data.repository import Repository
from aios.errors import AiosError, InvalidInput
from aios.executors.sandbox import IMAGE_INPUTS
from aios.lineage.plan import (
    FORWARDED,
    INPUTS_DIR,
    OUTPUTS_DIR,
    PLAN_FILE,
    PRIVATE_INPUTS,
    DataPlan,
    DataResult,
    UsedVersion,
    cache_key,
    write_json_atomically,
)

__all__ = ["main", "open_store"]

PASSPHRASE_ENV = "AIOS_DATA_PASSPHRASE"
RESOLVED_FILE = ".resolved.json"
_WAITS_OUT = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_VIEWS = ("host", "image")
_USAGE = (
    "usage: python -I -m aios.lineage.stage [--private-inputs host|image] CONTROL_DIR -- COMMAND..."
)


class StageError(AiosError):
    """The job's data could not be staged or published; the message says why."""


def backend_at(location: str) -> Backend:
    """The backend of a repository location: a URL with a scheme is fsspec, anything
    else a local directory."""
    if "://" in location and not location.startswith("file://"):
        return FsspecBackend(location)
    return LocalBackend(Path(location.removeprefix("file://")).expanduser())


def open_store(location: str, passphrase: str | None) -> DataStore:
    """The datasets of the repository at ``location``."""
    return DataStore(Repository.open(backend_at(location), passphrase))


def main(argv: list[str]) -> int:
    view = None
    if argv[:1] == [PRIVATE_INPUTS]:
        view, argv = (argv[1] if len(argv) > 1 else None), argv[2:]
        if view not in _VIEWS:
            print(_USAGE, file=sys.stderr)
            return 2
    if len(argv) < 3 or argv[1] != "--":
        print(_USAGE, file=sys.stderr)
        return 2
    control, command = Path(argv[0]), argv[2:]
    workdir = Path.cwd()  # the executor's wrapper entered the job's directory
    plan = DataPlan.read(control / PLAN_FILE)
    secrets = {name: os.environ.pop(name) for name in FORWARDED if name in os.environ}
    env = dict(os.environ)  # the command's, when it runs without a sandbox
    os.environ.update(secrets)  # the repository's object store reads them from here
    passphrase = os.environ.pop(PASSPHRASE_ENV, None)
    replica = int(os.environ.get("AIOS_REPLICA", "0"))
    try:
        store = open_store(plan.repo, passphrase)
    except AiosError as exc:
        return _fail(f"the data repository at {plan.repo}: {exc}")
    try:
        inputs = _materialise(store, plan, workdir, control, view)
        if plan.outputs and plan.cache:  # every replica of a gang skips the command
            reused = _reuse(store, plan, inputs)
            if reused is not None:
                if replica == 0:
                    DataResult(inputs, reused[1], cached_from=reused[0]).write(control)
                refs = ", ".join(v.ref for v in reused[1])
                print(f"aios: reused {refs} of job {reused[0]}: same command, same inputs")
                return 0
        _make_outputs(plan, workdir)
        code = _run(command, env, workdir)
        if code != 0 or replica != 0:
            if replica == 0:
                DataResult(inputs, []).write(control)
            return _exit_like(code)
        outputs = _publish(store, plan, inputs, workdir)
        DataResult(inputs, outputs).write(control)
        return 0
    except AiosError as exc:
        return _fail(str(exc))
    finally:
        store.repo.close()


def _fail(message: str) -> int:
    print(f"aios: error: {message}", file=sys.stderr)
    return 1


def _warn(message: str) -> None:
    print(f"aios: warning: {message}", file=sys.stderr, flush=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path``: the replicas of a gang share a directory."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _materialise(
    store: DataStore, plan: DataPlan, workdir: Path, control: Path, view: str | None
) -> list[UsedVersion]:
    """The input versions, materialised under ``inputs`` in the job's directory, or
    with ``view`` in the control directory and linked from the job's (see the
    module's docstring)."""
    if not plan.inputs:
        return []
    with _locked(control / ".inputs.lock"):
        if view is not None:
            _link(workdir, str(control / INPUTS_DIR) if view == "host" else IMAGE_INPUTS)
        into = workdir if view is None else control
        resolved = control / RESOLVED_FILE
        root = into / INPUTS_DIR
        if resolved.exists() and _fresh(root):  # another replica, or an earlier attempt
            return [UsedVersion(**v) for v in json.loads(resolved.read_text())]
        _fresh_directory(into, INPUTS_DIR)
        used: list[UsedVersion] = []
        for ref in plan.inputs:
            try:
                version = store.resolve(ref)
            except AiosError as exc:
                raise StageError(f"input {ref}: {exc}") from None
            dest = root / version.name
            result = store.get(version.name, version.version, dest)
            if result.damaged:
                raise StageError(
                    f"input {version.ref}: damaged in the repository: {', '.join(result.damaged)}"
                )
            _make_read_only(dest)
            used.append(UsedVersion(version.name, version.version, version.snapshot))
        root.chmod(0o555)
        write_json_atomically(resolved, [asdict(v) for v in used])
        return used


def _fresh(root: Path) -> bool:
    """Whether ``root`` is the inputs directory this wrapper made (a real directory
    owned by it), not something the job put in its place."""
    try:
        found = root.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(found.st_mode) and found.st_uid == os.geteuid()


def _link(workdir: Path, target: str) -> None:
    """Makes ``inputs`` in the job's directory a link to ``target``, whatever the job
    left under that name (an earlier attempt's link is kept: another replica of a gang
    may be reading through it). A link the job puts there later only changes what the
    job itself sees."""
    parent = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        with suppress(OSError):  # absent, or not a link
            if os.readlink(INPUTS_DIR, dir_fd=parent) == target:
                return
        _remove_at(parent, INPUTS_DIR)
        try:
            os.symlink(target, INPUTS_DIR, dir_fd=parent)
        except FileExistsError:
            raise StageError(f"{INPUTS_DIR}: the job made it while it was linked") from None
    finally:
        os.close(parent)


def _remove_at(parent: int, name: str) -> None:
    """Removes ``name`` in directory ``parent`` (a tree the job made read-only too),
    never following a link."""
    try:
        found = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(found.st_mode):
        _make_writable_at(parent, name)
        shutil.rmtree(name, dir_fd=parent)  # never follows a link (fd-based)
    else:
        os.unlink(name, dir_fd=parent)


def _fresh_directory(workdir: Path, name: str, owner: int | None = None) -> None:
    """Makes ``workdir/name`` an empty directory of this wrapper's (given to ``owner``
    when not None), whatever the job left under that name: it is removed first, and
    nothing is followed through a link."""
    parent = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _remove_at(parent, name)
        os.mkdir(name, 0o755, dir_fd=parent)
        if owner is not None:
            os.chown(name, owner, owner, dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)


def _make_writable_at(parent: int, name: str) -> None:
    """Lets :func:`shutil.rmtree` remove a tree this wrapper made read-only (it may be
    an earlier attempt's inputs); links are left alone."""
    for *_, fd in os.fwalk(name, dir_fd=parent, follow_symlinks=False):
        os.chmod(fd, 0o755)


def _make_outputs(plan: DataPlan, workdir: Path) -> None:
    """``outputs/NAME`` for each output, empty and the job's (its directory's owner):
    the command writes there, as the sandbox's uid."""
    if not plan.outputs:
        return
    owner = workdir.stat().st_uid if os.geteuid() == 0 else None
    _fresh_directory(workdir, OUTPUTS_DIR, owner)
    for name in plan.outputs:
        _fresh_directory(workdir / OUTPUTS_DIR, name, owner)


def _make_read_only(root: Path) -> None:
    """Files 0444 and directories 0555, deepest first."""
    for directory, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(0o444)
        for name in dirnames:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(0o555)
    root.chmod(0o555)


def _reuse(
    store: DataStore, plan: DataPlan, inputs: list[UsedVersion]
) -> tuple[int, list[UsedVersion]] | None:
    """The job and output versions of an earlier run with the same cache key, if every
    output of this job has one. Not this job's own: a replica of a gang that starts
    after replica 0 has already published must still run its part."""
    key = cache_key(plan, inputs)
    found: dict[str, DatasetVersion] = {}
    for snapshot in store.repo.snapshots():
        if not is_dataset(snapshot):
            continue
        version = DatasetVersion.of(snapshot)
        if (
            version.name in plan.outputs
            and version.lineage.get("cache_key") == key
            and str(version.lineage.get("job")) != str(plan.job_id)
        ):
            best = found.get(version.name)
            if best is None or version.version > best.version:
                found[version.name] = version
    if set(found) != set(plan.outputs):
        return None
    source = max(int(v.lineage.get("job", 0)) for v in found.values())
    return source, [UsedVersion(v.name, v.version, v.snapshot) for v in found.values()]


def _run(command: list[str], env: dict[str, str], workdir: Path) -> int:
    """Runs the command (the sandbox first, when it has one) and returns its status.
    The sandbox reads its arguments from descriptors 4 and 5, which it passes on."""
    passed = tuple(fd for fd in (4, 5) if _is_open(fd))
    child = subprocess.Popen(command, cwd=workdir, env=env, pass_fds=passed)
    # Ignored only once the command runs (an ignored signal would pass on through its
    # exec): the command gets them from the executor's killpg, the wrapper waits.
    for signum in _WAITS_OUT:
        signal.signal(signum, signal.SIG_IGN)
    return child.wait()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _exit_like(code: int) -> int:
    """Ends the wrapper the way the command ended: by the same signal, or its code."""
    if code < 0:
        for signum in _WAITS_OUT:
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code if code >= 0 else 128 - code


def _publish(
    store: DataStore, plan: DataPlan, inputs: list[UsedVersion], workdir: Path
) -> list[UsedVersion]:
    key = cache_key(plan, inputs) if plan.cache else None
    lineage = {
        "job": plan.job_id,
        "inputs": [v.ref for v in inputs],
        "input_snapshots": [v.snapshot for v in inputs],
        "cache_key": key,
    }
    published: list[UsedVersion] = []
    for name in plan.outputs:
        source = _output_source(workdir, name)
        version = store.add(name, source, f"output of job {plan.job_id}", lineage=lineage)
        for path in version.changed:
            _warn(f"{OUTPUTS_DIR}/{name}/{path} changed while it was read; stored as read")
        for path in version.vanished:
            _warn(f"{OUTPUTS_DIR}/{name}/{path} vanished before it was read; not stored")
        published.append(UsedVersion(version.name, version.version, version.snapshot))
    return published


def _output_source(workdir: Path, name: str) -> Path:
    """``workdir/outputs/NAME``, once neither it nor ``outputs`` is a link. The wrapper
    reads it with the control plane's rights, outside the job's sandbox: a link the job
    left there would publish what the job itself cannot read (the control plane's home,
    another tenant's job). The job's directory itself is the control plane's to name
    (``jobs/`` is not the job's). In a sandbox no process of the replica runs any more
    when it publishes (its PID namespace ended with it); a gang's sibling replica that
    still runs could swap a link in between, which the data store's own check of the
    tree (no symlink leaving it) narrows but does not close. Unsandboxed, a job runs
    with the control plane's rights anyway."""
    outputs = workdir / OUTPUTS_DIR
    for path in (outputs, outputs / name):
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            raise InvalidInput(f"output {name}: the job left no directory {path}") from None
        if stat.S_ISLNK(mode):
            raise InvalidInput(
                f"output {name}: {path.relative_to(workdir)} is a symlink; "
                "an output is a directory the job wrote, not a link"
            )
        if not stat.S_ISDIR(mode):
            raise InvalidInput(f"output {name}: the job left no directory {path}")
    return outputs / name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
