"""The demo's data part: an encrypted data repository holding the raw digits, the
lineage of the deployed model back to them, a rerun of the prepare step that reuses
its output, and an incremental backup verified byte by byte."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from aios.client import Client
from aios.control.specs import PipelineSpec
from aios.data.backend import LocalBackend
from aios.data.datasets import DataStore
from aios.data.repository import Repository
from aios.demo.steps import write_raw_digits
from aios.lineage.api import TreeView

__all__ = ["back_up", "create_repository", "fetch", "rerun_prepare", "show_lineage"]

PASSPHRASE_ENV = "AIOS_DATA_PASSPHRASE"


def create_repository(console: Console, home: Path, raw: str) -> Path:
    """Creates the encrypted repository at ``home/data`` (its passphrase in this
    process's environment, which the control plane's jobs inherit) and adds the raw
    digits as version 1 of ``raw``."""
    os.environ.setdefault(PASSPHRASE_ENV, secrets.token_urlsafe(16))
    location = home / "data"
    with Repository.init(LocalBackend(location), os.environ[PASSPHRASE_ENV]) as repo:
        version = DataStore(repo).add(raw, write_raw_digits(home / "raw"), "scikit-learn digits")
    schema = version.schemas.get("digits.csv")
    columns = len(schema.columns) if schema is not None else 0
    console.print(
        f"data repository {location} (encrypted): {version.ref}, {version.files} file, "
        f"{version.bytes:,} bytes, {columns} CSV columns"
    )
    return location


def fetch(console: Console, location: Path, ref: str, dest: Path) -> None:
    """Restores the dataset version ``ref`` into ``dest`` (``aios data get``)."""
    with Repository.open(LocalBackend(location), os.environ[PASSPHRASE_ENV]) as repo:
        store = DataStore(repo)
        version = store.resolve(ref)
        store.get(version.name, version.version, dest)
    console.print(f"{version.ref} ({version.message}) restored for the requests")


def show_lineage(console: Console, client: Client, model_ref: str) -> None:
    """Prints where the model version came from, down to the raw data."""
    view = client.lineage("model", model_ref)
    console.print(f"lineage of model {model_ref} (aios lineage --model {model_ref}):")
    _print_tree(console, view.upstream, 1)


def _print_tree(console: Console, tree: TreeView, depth: int) -> None:
    for link in tree.links:
        node = link.node
        name = f"job {node.ref}" if node.kind == "job" else f"{node.kind} {node.ref}"
        more = " (shown above)" if link.seen else ""
        line = f"{'   ' * depth}<- {name}  {node.label}".rstrip()
        console.print(f"{line}{more}", markup=False)
        _print_tree(console, link, depth + 1)


def rerun_prepare(console: Console, client: Client, pipeline: PipelineSpec) -> None:
    """Submits the prepare step again: same command, same input version, so its
    earlier output is reused instead of running again."""
    step = pipeline.steps["prepare"]
    spec = step.model_dump(exclude={"needs"}, exclude_unset=True)
    started = time.perf_counter()
    job = client.submit_many([spec | {"name": "prepare-again"}])[0]
    done = client.wait(job.id, timeout=120)
    took = time.perf_counter() - started
    console.print(f"prepare again as job {job.id}: {done.state} in {took:.2f} s, {done.message}")


def back_up(console: Console, home: Path, location: Path) -> None:
    """Backs the repository up to ``home/backup`` twice (the second copies nothing) and
    verifies every byte of the copy, through the CLI as a user would."""
    dest = str(home / "backup")
    env = os.environ | {"AIOS_DATA_REPO": str(location)}
    for args in (["create", "--to", dest], ["create", "--to", dest]):
        console.print(f"aios backup {' '.join(args)}: {_aios(env, 'backup', *args)}", markup=False)
    verdict = _aios(env, "backup", "verify", "--read-data", "--repo", dest).splitlines()[-1:]
    console.print(f"aios backup verify --read-data: {''.join(verdict)}", markup=False)


def _aios(env: dict[str, str], *args: str) -> str:
    """What ``aios ARGS`` printed (stdout, else stderr), stripped."""
    script = Path(sys.executable).with_name("aios")
    command = [str(script) if script.exists() else "aios", *args]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return out.stdout.strip() or out.stderr.strip()
