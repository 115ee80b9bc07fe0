"""``aios backup create|list|restore|verify|forget``: copies of the data store, proven intact.

``create --to DEST`` copies every snapshot the destination lacks with only the packs it
lacks (incremental); a new destination is created with the source's passphrase and
chunking, so its blobs deduplicate against later copies. ``verify --read-data`` reads
and authenticates every byte, as ``restic check --read-data`` does, and names the damaged
dataset versions and files. ``forget`` applies restic's retention (``--keep-last``,
``--keep-daily``) per dataset and label set. The repository is found and opened as for
``aios data`` (:mod:`aios.cli.data`); user mistakes are one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aios.cli.data_repo import (
    RepoOption,
    backend_for,
    make_room,
    one_line,
    open_repository,
    opened,
    read_whole,
    repo_location,
    report_restore,
    warn_incomplete,
    warn_index_damage,
)
from aios.cli.remote import FAILURE, fail
from aios.cli.render import stdout_console
from aios.errors import InvalidInput
from aios.resources.quantity import format_bytes

if TYPE_CHECKING:
    from aios.data.model import Snapshot

__all__ = ["backup_app"]

backup_app = typer.Typer(
    name="backup", help="Back up, verify and restore the data store.", no_args_is_help=True
)

FromOption = Annotated[
    str | None,
    typer.Option("--from", help="A backup repository (default: the data repository)."),
]


def describe(snapshot: Snapshot) -> str:
    """What a snapshot is, for people: ``NAME@V``, ``labels NAME:SET@V`` or its paths."""
    meta = snapshot.meta
    if "labels" in meta:
        return f"labels {meta.get('dataset')}:{meta['labels']}@{meta.get('version')}"
    if "dataset" in meta:
        return f"{meta['dataset']}@{meta.get('version')}"
    return ", ".join(snapshot.paths)


def create(
    to: Annotated[str, typer.Option("--to", help="The backup repository (path or URL).")],
    repo: RepoOption = None,
) -> None:
    """Copies the snapshots DEST lacks, with only the packs it lacks.

    Each file of a copied dataset version that was not read whole when it was added is
    named on stderr, and the command exits 3: the backup holds it as the version does.
    """
    from aios.data.backup import copy_to
    from aios.data.datasets import DatasetVersion, is_dataset
    from aios.data.repository import Repository

    source, secret = open_repository(repo_location(repo))
    try:
        backend = backend_for(to)
        if backend.exists("config"):
            dest, _ = open_repository(to, secret)
        else:
            make_room(backend)
            dest = Repository.init(backend, secret, encrypted=bool(source.config["encrypted"]))
        try:
            result = copy_to(source, dest)
        finally:
            dest.close()
        copied = set(result.copied)
        versions = [
            DatasetVersion.of(s) for s in source.snapshots() if s.id in copied and is_dataset(s)
        ]
    finally:
        source.close()
    typer.echo(
        f"copied {result.snapshots} snapshots, {result.blobs} blobs in {result.packs} packs "
        f"({format_bytes(result.bytes)}) to {to}"
    )
    changed = [f"{v.ref}: {p}" for v in versions for p in v.changed]
    vanished = [f"{v.ref}: {p}" for v in versions for p in v.vanished]
    warn_incomplete(str, changed, vanished)


def list_snapshots(source: FromOption = None) -> None:
    """Lists the snapshots of a backup (or of the data repository), oldest first;
    COMPLETE says "no" for a dataset version with files not read whole."""
    with opened(source) as repository:
        snapshots = repository.snapshots()
    table = Table("ID", "TIME", "WHAT", "COMPLETE", "TAGS", box=None)
    for snapshot in snapshots:
        table.add_row(
            snapshot.short_id,
            snapshot.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            escape(describe(snapshot)),
            _read_whole(snapshot),
            escape(",".join(sorted(snapshot.tags))),
        )
    stdout_console().print(table)


def _read_whole(snapshot: Snapshot) -> str:
    from aios.data.datasets import DatasetVersion, is_dataset

    if not is_dataset(snapshot):
        return "yes"  # label sets are written from a staging copy, read whole
    version = DatasetVersion.of(snapshot)
    return read_whole(version.complete, len(version.changed), len(version.vanished))


def restore(
    to: Annotated[Path, typer.Option("--to", help="A new or empty directory.")],
    snapshot: Annotated[
        str | None, typer.Argument(help="A snapshot id or prefix (default: the latest).")
    ] = None,
    source: FromOption = None,
) -> None:
    """Restores one snapshot into --to; damaged files are named and not written."""
    from aios.data.safety import empty_destination

    with opened(source) as repository:
        if snapshot is None:
            found = repository.snapshots()
            if not found:
                raise InvalidInput("the repository holds no snapshot to restore")
            chosen = found[-1]
        else:
            chosen = repository.load_snapshot(snapshot)
        empty_destination(to)
        result = repository.restore(chosen.tree, to)
        warn_index_damage(repository)
    typer.echo(f"snapshot {chosen.short_id} ({describe(chosen)})")
    report_restore(result.files, result.bytes, result.damaged)


def verify(
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Read and authenticate every stored byte.")
    ] = False,
    repo: RepoOption = None,
) -> None:
    """Checks the repository; exits 1 naming the damaged versions and files."""
    with opened(repo) as repository:
        result = repository.check(read_data=read_data)
        names = {s.id: describe(s) for s in repository.snapshots()}
    if result.ok:
        typer.echo("no errors found" + (" (every byte read)" if read_data else ""))
        return
    for error in result.errors:
        typer.echo(f"error: {error}", err=True)
    for snapshot_id, paths in sorted(result.damaged_snapshots.items()):
        what = names.get(snapshot_id, snapshot_id[:8])
        typer.echo(f"damaged {what} ({snapshot_id[:8]}): {', '.join(paths)}")
    fail(
        f"{len(result.damaged_snapshots)} snapshot(s) damaged, "
        f"{len(result.damaged_packs)} pack(s) failed verification",
        FAILURE,
    )


def forget(
    keep_last: Annotated[int, typer.Option("--keep-last", help="Keep the N newest.")] = 0,
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", help="Keep the newest of each of the last N days.")
    ] = 0,
    source: FromOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Then remove unused data.")] = False,
) -> None:
    """Forgets the snapshots the policy does not keep, per dataset and label set."""
    from aios.data.retention import Policy, apply_policy

    policy = Policy(keep_last=keep_last, keep_daily=keep_daily)
    with opened(source) as repository:
        verdict = apply_policy(repository.snapshots(), policy)
        for snapshot in verdict.remove:
            typer.echo(
                f"{'would forget' if dry_run else 'forget'} {snapshot.short_id} "
                f"{describe(snapshot)}"
            )
        if dry_run:
            return
        repository.forget([s.id for s in verdict.remove])
        typer.echo(f"kept {len(verdict.keep)}, forgot {len(verdict.remove)} snapshots")
        if prune:
            freed = repository.gc().freed_bytes
            typer.echo(f"pruned {format_bytes(freed)}")


for _name, _command in (
    ("create", create),
    ("list", list_snapshots),
    ("restore", restore),
    ("verify", verify),
    ("forget", forget),
):
    backup_app.command(_name)(one_line(_command))
