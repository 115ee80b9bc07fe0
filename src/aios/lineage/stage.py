"""The stage wrapper: ``python -m aios.lineage.stage PLAN`` runs a job's command between
its dataset inputs and outputs, on the job's own node and under its own limits.

1. Resolves each input reference to a version (once per job: a retry or another
   replica of a gang reads the same versions) and materialises it read-only at
   ``inputs/NAME`` in the job's directory.
2. When the job publishes outputs and allows reuse, looks for versions of every output
   published by an earlier run of the same command on the same input versions (the
   :func:`~aios.lineage.plan.cache_key` kept in their lineage). If all are there the
   command does not run: the job ends at once, naming them as its outputs.
3. Otherwise runs the command with ``AIOS_INPUTS`` and ``AIOS_OUTPUTS`` set, the
   repository's passphrase taken out of its environment. Signals reach the command from
   the executor (it signals the process group), so the wrapper only waits, and ends the
   way the command ended.
4. When the command succeeds, replica 0 publishes ``outputs/NAME`` as the next version
   of each output dataset, with the job, its inputs and the cache key as lineage.

What it did goes to ``data-result.json`` for the control plane. A reference that does
not resolve, a damaged input or a missing output directory fails the job with one line
on stderr, and nothing is published.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from aios.data.backend import Backend, FsspecBackend, LocalBackend
from aios.data.datasets import DatasetVersion, DataStore, is_dataset
from aios.data.repository import Repository
from aios.errors import AiosError, InvalidInput
from aios.lineage.plan import (
    INPUTS_DIR,
    OUTPUTS_DIR,
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
    if len(argv) != 1:
        print("usage: python -m aios.lineage.stage PLAN", file=sys.stderr)
        return 2
    plan_path = Path(argv[0]).absolute()
    workdir = plan_path.parent
    plan = DataPlan.read(plan_path)
    passphrase = os.environ.pop(PASSPHRASE_ENV, None)
    replica = int(os.environ.get("AIOS_REPLICA", "0"))
    try:
        store = open_store(plan.repo, passphrase)
    except AiosError as exc:
        return _fail(f"the data repository at {plan.repo}: {exc}")
    try:
        inputs = _materialise(store, plan, workdir)
        if plan.outputs and plan.cache:  # every replica of a gang skips the command
            reused = _reuse(store, plan, inputs)
            if reused is not None:
                if replica == 0:
                    DataResult(inputs, reused[1], cached_from=reused[0]).write(workdir)
                refs = ", ".join(v.ref for v in reused[1])
                print(f"aios: reused {refs} of job {reused[0]}: same command, same inputs")
                return 0
        for name in plan.outputs:
            (workdir / OUTPUTS_DIR / name).mkdir(parents=True, exist_ok=True)
        code = _run(plan, workdir)
        if code != 0 or replica != 0:
            if replica == 0:
                DataResult(inputs, []).write(workdir)
            return _exit_like(code)
        outputs = _publish(store, plan, inputs, workdir)
        DataResult(inputs, outputs).write(workdir)
        return 0
    except AiosError as exc:
        return _fail(str(exc))
    finally:
        store.repo.close()


def _fail(message: str) -> int:
    print(f"aios: error: {message}", file=sys.stderr)
    return 1


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path``: the replicas of a gang share a directory."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _materialise(store: DataStore, plan: DataPlan, workdir: Path) -> list[UsedVersion]:
    if not plan.inputs:
        return []
    root = workdir / INPUTS_DIR
    root.mkdir(exist_ok=True)
    with _locked(workdir / ".inputs.lock"):
        resolved = root / RESOLVED_FILE
        if resolved.exists():  # another replica, or an earlier attempt, did it
            return [UsedVersion(**v) for v in json.loads(resolved.read_text())]
        used: list[UsedVersion] = []
        for ref in plan.inputs:
            try:
                version = store.resolve(ref)
            except AiosError as exc:
                raise StageError(f"input {ref}: {exc}") from None
            dest = root / version.name
            if dest.exists():  # left half-written by a killed attempt
                _make_writable(dest)
                shutil.rmtree(dest)
            result = store.get(version.name, version.version, dest)
            if result.damaged:
                raise StageError(
                    f"input {version.ref}: damaged in the repository: {', '.join(result.damaged)}"
                )
            _make_read_only(dest)
            used.append(UsedVersion(version.name, version.version, version.snapshot))
        write_json_atomically(resolved, [asdict(v) for v in used])
        return used


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


def _make_writable(root: Path) -> None:
    root.chmod(0o755)
    for directory, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(0o755)


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


def _run(plan: DataPlan, workdir: Path) -> int:
    env = dict(os.environ)
    env["AIOS_INPUTS"] = str(workdir / INPUTS_DIR)
    env["AIOS_OUTPUTS"] = str(workdir / OUTPUTS_DIR)
    if plan.shell:
        child = subprocess.Popen(plan.command[0], shell=True, cwd=workdir, env=env)
    else:
        child = subprocess.Popen(plan.command, cwd=workdir, env=env)
    # Ignored only once the command runs (an ignored signal would pass on through its
    # exec): the command gets them from the executor's killpg, the wrapper waits.
    for signum in _WAITS_OUT:
        signal.signal(signum, signal.SIG_IGN)
    return child.wait()


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
        source = workdir / OUTPUTS_DIR / name
        if not source.is_dir():
            raise InvalidInput(f"output {name}: the job left no directory {source}")
        version = store.add(name, source, f"output of job {plan.job_id}", lineage=lineage)
        published.append(UsedVersion(version.name, version.version, version.snapshot))
    return published


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
