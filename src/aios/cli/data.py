"""``aios data …``: datasets, their versions, tags and label sets.

The repository is ``--repo URL_OR_PATH``, else ``AIOS_DATA_REPO``, else
``$AIOS_HOME/data``; its passphrase ``AIOS_DATA_PASSPHRASE``, else a prompt that does not
echo, else the first line of stdin when it is not a terminal. Every command is
registered through :func:`one_line`: a user mistake (a wrong passphrase, a missing
dataset or version, a ``../`` path, a symlink pointing out of a dataset, a path that is a
file where a directory is needed) is one line ``aios: error: …`` on stderr and exit code
2, with nothing written. Answers go to stdout, progress to stderr.

``aios backup …`` lives in :mod:`aios.cli.backup`; both open the repository through
:mod:`aios.cli.data_repo`. ``aios data share|unshare|own|shares`` ask the control plane
instead (:mod:`aios.cli.sharing`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aios.cli.data_repo import (
    PASSPHRASE_ENV,
    RepoOption,
    backend_for,
    make_room,
    one_line,
    opened,
    passphrase,
    read_whole,
    repo_location,
    report_restore,
    warn_incomplete,
    warn_index_damage,
)
from aios.cli.remote import FAILURE, fail
from aios.cli.render import stderr_console, stdout_console
from aios.errors import InvalidInput
from aios.resources.quantity import format_bytes

if TYPE_CHECKING:
    from rich.progress import TaskID

    from aios.data.datasets import DataStore
    from aios.data.labelsets import LabelFormat, LabelStore

__all__ = ["data_app", "labels_app"]

data_app = typer.Typer(name="data", help="Datasets: versions, diffs, tags.", no_args_is_help=True)
labels_app = typer.Typer(
    name="labels", help="Label sets of dataset versions.", no_args_is_help=True
)
repair_app = typer.Typer(name="repair", help="Repair a damaged repository.", no_args_is_help=True)


@contextlib.contextmanager
def _datasets(repo: str | None) -> Iterator[DataStore]:
    from aios.data.datasets import DataStore

    with opened(repo) as repository:
        yield DataStore(repository)


@contextlib.contextmanager
def _labels(repo: str | None) -> Iterator[LabelStore]:
    from aios.data.labelsets import LabelStore

    with _datasets(repo) as store:
        yield LabelStore(store)


def init(
    repo: RepoOption = None,
    unencrypted: Annotated[
        bool, typer.Option("--unencrypted", help="Store chunks without encryption.")
    ] = False,
) -> None:
    """Creates an empty repository; encrypted with a passphrase unless --unencrypted."""
    from aios.data.repository import Repository

    location = repo_location(repo)
    backend = backend_for(location)
    if backend.exists("config"):
        raise InvalidInput(f"{location}: holds a repository already")
    secret = None if unencrypted else passphrase(confirm=True)
    if secret == "":
        raise InvalidInput(f"{PASSPHRASE_ENV}: the passphrase must not be empty")
    make_room(backend)
    Repository.init(backend, secret, encrypted=not unencrypted).close()
    kind = "unencrypted" if unencrypted else "encrypted"
    typer.echo(f"initialised {kind} repository at {location}")


def add(
    name: Annotated[str, typer.Argument(help="The dataset.")],
    path: Annotated[Path, typer.Argument(help="A file or a directory.")],
    message: Annotated[str, typer.Option("--message", "-m", help="What changed.")] = "",
    repo: RepoOption = None,
) -> None:
    """Stores PATH as the next version of dataset NAME (only new chunks are written).

    A file that changes while it is read is read again; one that never holds still is
    stored as read, one that vanishes is left out. Each is named on stderr, and the
    command exits 3: the version is kept, marked not complete.
    """
    from aios.data.datasets import check_name
    from aios.data.safety import check_source

    check_name(name, "dataset")
    check_source(path)  # a bad tree is refused before the passphrase is asked for
    with _datasets(repo) as store, _progress() as progress:
        version = store.add(name, path, message, progress=progress)
    typer.echo(
        f"{version.ref}: {version.files} files, {format_bytes(version.bytes)}, "
        f"{format_bytes(version.new_bytes or 0)} new"
        + ("" if version.complete else " (not read whole)")
    )
    # Paths in the version are relative to PATH, or PATH's own name when it is a file.
    base = path if path.is_dir() else path.parent
    warn_incomplete(lambda p: str(base / p), version.changed, version.vanished)


LARGE_ADD = 64 * 1024 * 1024
"""Adds of at least this many bytes show a progress bar (on stderr)."""


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a rich bar on stderr once the add is
    known to be large; small adds print nothing but their result."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        console=stderr_console(),
        transient=True,
    )
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task and total >= LARGE_ADD:
            bar.start()
            task.append(bar.add_task("adding", total=total))
        if task:
            bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:  # stopping a bar never started prints an empty line on stderr
            bar.stop()


def list_datasets(repo: RepoOption = None) -> None:
    """Lists the datasets with their latest version."""
    table = Table("NAME", "VERSIONS", "LATEST", "FILES", "SIZE", "CREATED", "TAGS", box=None)
    with _datasets(repo) as store:
        summaries = store.datasets()
    for summary in summaries:
        latest = summary.latest
        table.add_row(
            escape(summary.name),
            str(summary.versions),
            str(latest.version),
            str(latest.files),
            format_bytes(latest.bytes),
            latest.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            escape(",".join(latest.tags)),
        )
    stdout_console().print(table)


def versions(
    name: Annotated[str, typer.Argument(help="The dataset.")],
    repo: RepoOption = None,
) -> None:
    """Lists the versions of dataset NAME, oldest first, with their tabular schemas;
    COMPLETE says "no" for a version with files not read whole (see 'add')."""
    table = Table(
        "VERSION", "CREATED", "FILES", "SIZE", "COMPLETE", "TAGS", "SCHEMAS", "MESSAGE", box=None
    )
    with _datasets(repo) as store:
        found = store.versions(name)
    for version in found:
        schemas = "; ".join(
            f"{path}({', '.join(f'{c.name}:{c.type}' for c in schema.columns)})"
            for path, schema in sorted(version.schemas.items())
        )
        table.add_row(
            str(version.version),
            version.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            str(version.files),
            format_bytes(version.bytes),
            read_whole(version.complete, len(version.changed), len(version.vanished)),
            escape(",".join(version.tags)),
            escape(schemas),
            escape(version.message),
        )
    stdout_console().print(table)


def diff(
    a: Annotated[str, typer.Argument(help="NAME@VERSION, the old side.")],
    b: Annotated[str, typer.Argument(help="NAME@VERSION, the new side.")],
    repo: RepoOption = None,
) -> None:
    """Lists the files added (+), removed (-) and modified (M) from A to B."""
    from aios.data.datasets import parse_version

    (name, old), (other, new) = parse_version(a), parse_version(b)
    if name != other:
        raise InvalidInput(f"{a} and {b}: diff compares two versions of one dataset")
    with _datasets(repo) as store:
        changes = store.diff(name, old, new)
    for entry in changes.added:
        typer.echo(f"+ {entry.path} ({format_bytes(entry.size)})")
    for entry in changes.removed:
        typer.echo(f"- {entry.path} ({format_bytes(entry.size)})")
    for change in changes.modified:
        typer.echo(
            f"M {change.path} ({format_bytes(change.old_size)} -> {format_bytes(change.new_size)})"
        )


def get(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (or NAME for the latest).")],
    dest: Annotated[Path, typer.Argument(help="A new or empty directory.")],
    repo: RepoOption = None,
) -> None:
    """Restores a dataset version into DEST."""
    from aios.data.datasets import parse_version

    name, version = parse_version(ref)
    with _datasets(repo) as store:
        result = store.get(name, version, dest)
        warn_index_damage(store.repo)
    report_restore(result.files, result.bytes, result.damaged)


def tag(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to tag.")],
    name: Annotated[str, typer.Argument(help="The tag; it moves if another version has it.")],
    repo: RepoOption = None,
) -> None:
    """Tags a dataset version."""
    from aios.data.datasets import parse_version

    dataset, version = parse_version(ref)
    with _datasets(repo) as store:
        tagged = store.tag(dataset, version, name)
    typer.echo(f"{tagged.ref} tagged {name}")


def untag(
    dataset: Annotated[str, typer.Argument(help="The dataset.")],
    name: Annotated[str, typer.Argument(help="The tag to remove.")],
    repo: RepoOption = None,
) -> None:
    """Removes a tag from the version of a dataset that holds it."""
    with _datasets(repo) as store:
        untagged = store.untag(dataset, name)
    typer.echo(f"{untagged.ref} untagged {name}")


def check(
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Also read, decrypt and hash every blob.")
    ] = False,
    repo: RepoOption = None,
) -> None:
    """Checks the repository: the index, the packs it names and every snapshot's blobs.
    Prints each problem; exits 1 when there is one."""
    from aios.cli.backup import describe

    with opened(repo) as repository:
        result = repository.check(read_data=read_data)
        names = {s.id: describe(s) for s in repository.snapshots()}
    how = "every blob read and verified" if read_data else "structure only"
    typer.echo(
        f"checked {result.snapshots} snapshots, {result.packs} packs, {result.blobs} blobs ({how})"
    )
    if result.unindexed_packs and not result.index_damaged:
        typer.echo(
            f"note: {len(result.unindexed_packs)} pack(s) no index names (left by an "
            "interrupted writer; 'aios data gc' removes them)"
        )
    if result.ok:
        typer.echo("no errors found")
        return
    for error in result.errors:
        typer.echo(f"error: {error}")
    for snapshot_id, paths in sorted(result.damaged_snapshots.items()):
        what = names.get(snapshot_id, snapshot_id[:8])
        for path in paths:
            typer.echo(f"damaged {what} ({snapshot_id[:8]}): {path}")
    found = [
        f"{count} {what}"
        for count, what in (
            (len(result.damaged_snapshots), "damaged snapshot(s)"),
            (len(result.damaged_packs), "damaged pack(s)"),
            (len(result.damaged_blobs), "damaged blob(s)"),
        )
        if count
    ]
    if result.index_damaged:
        found.insert(0, "a damaged index")
    fail(f"check found {', '.join(found) or 'errors'}", FAILURE)


def repair_index(repo: RepoOption = None) -> None:
    """Rebuilds the index from the headers of the packs (fixes an unreadable, emptied or
    deleted index); the old index files are removed once the new one is written."""
    with opened(repo) as repository:
        rebuilt = repository.rebuild_index()
    typer.echo(
        f"rebuilt the index from the pack headers: {rebuilt.packs} packs, {rebuilt.blobs} blobs"
    )
    if rebuilt.unreadable:
        for pack_id in rebuilt.unreadable:
            typer.echo(
                f"aios: error: pack {pack_id}: unreadable header and no index entry; "
                "its blobs are lost to the index",
                err=True,
            )
        raise typer.Exit(FAILURE)


def gc(repo: RepoOption = None) -> None:
    """Removes chunks no snapshot references (safe against a concurrent add)."""
    with opened(repo) as repository:
        result = repository.gc()
    temporaries = (
        f" and {result.removed_temporaries} temporary files of killed writes"
        if result.removed_temporaries
        else ""
    )
    typer.echo(
        f"removed {result.removed_blobs} blobs in {result.removed_packs} packs{temporaries}, "
        f"repacked {result.repacked_packs}, freed {format_bytes(result.freed_bytes)}"
    )


FormatOption = Annotated[str, typer.Option("--format", "-f", help="jsonl, coco or yolo.")]
SizeOption = Annotated[
    str | None,
    typer.Option("--image-size", help="WxH for images whose size is not otherwise known."),
]


def _format(text: str) -> LabelFormat:
    from aios.data.labelsets import LabelFormat

    try:
        return LabelFormat(text.lower())
    except ValueError:
        raise InvalidInput(f"--format {text!r}: expected jsonl, coco or yolo") from None


def _size(text: str | None) -> tuple[int, int] | None:
    from aios.data.labelsets import parse_image_size

    return None if text is None else parse_image_size(text)


def import_labels(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION of the dataset annotated.")],
    name: Annotated[str, typer.Argument(help="The label set.")],
    source: Annotated[Path, typer.Argument(help="A JSONL or COCO file, or a YOLO directory.")],
    fmt: FormatOption = "jsonl",
    image_size: SizeOption = None,
    message: Annotated[str, typer.Option("--message", "-m")] = "",
    repo: RepoOption = None,
) -> None:
    """Imports annotations as the next version of label set NAME."""
    from aios.data.datasets import parse_version

    dataset, version = parse_version(ref)
    kind, size = _format(fmt), _size(image_size)
    with _labels(repo) as store:
        stored = store.import_labels(
            dataset, version, name, source, kind, image_size=size, message=message
        )
    typer.echo(
        f"{stored.dataset}:{stored.name}@{stored.version} on {stored.dataset}@"
        f"{stored.dataset_version}: {stored.files} files, {stored.boxes} boxes"
    )


def export_labels(
    dataset: Annotated[str, typer.Argument(help="The dataset.")],
    ref: Annotated[str, typer.Argument(help="SET or SET@VERSION.")],
    dest: Annotated[Path, typer.Argument(help="A new file, or an empty directory for YOLO.")],
    fmt: FormatOption = "jsonl",
    image_size: SizeOption = None,
    repo: RepoOption = None,
) -> None:
    """Exports a label set version to DEST."""
    from aios.data.datasets import check_name, parse_version

    check_name(dataset, "dataset")
    name, version = parse_version(ref)
    kind, size = _format(fmt), _size(image_size)
    with _labels(repo) as store:
        chosen = store.version(dataset, name, version)
        labels = store.export(chosen, dest, kind, image_size=size)
    typer.echo(f"exported {len(labels.files)} files, {labels.boxes()} boxes to {dest}")


def list_labels(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset's.")] = None,
    repo: RepoOption = None,
) -> None:
    """Lists label sets with their latest version."""
    table = Table("DATASET", "SET", "VERSION", "ON", "FILES", "BOXES", "CLASSES", box=None)
    with _labels(repo) as store:
        sets = store.sets(dataset)
    for found in sets:
        table.add_row(
            escape(found.dataset),
            escape(found.name),
            str(found.version),
            f"{escape(found.dataset)}@{found.dataset_version}",
            str(found.files),
            str(found.boxes),
            escape(",".join(found.classes)),
        )
    stdout_console().print(table)


for _app, _name, _command in (
    (data_app, "init", init),
    (data_app, "add", add),
    (data_app, "ls", list_datasets),
    (data_app, "versions", versions),
    (data_app, "diff", diff),
    (data_app, "get", get),
    (data_app, "tag", tag),
    (data_app, "untag", untag),
    (data_app, "gc", gc),
    (data_app, "check", check),
    (repair_app, "index", repair_index),
    (labels_app, "import", import_labels),
    (labels_app, "export", export_labels),
    (labels_app, "ls", list_labels),
):
    _app.command(_name)(one_line(_command))
data_app.add_typer(labels_app)
data_app.add_typer(repair_app)
