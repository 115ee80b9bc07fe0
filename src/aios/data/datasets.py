"""Datasets: named, numbered versions of a file or a directory, kept in a repository.

A dataset version is a snapshot of the repository whose ``meta`` says which dataset and
version it is, with what the version holds::

    {"dataset": "digits", "version": 3, "message": "…", "files": 1797, "bytes": 123456,
     "schemas": {"train.csv": {"format": "csv", "columns": […]}}, "complete": true}

and whose ``tags`` are the user's tags (a tag names one version of a dataset at a time;
setting it again moves it). Versions number from 1 per dataset; ``NAME@REF`` names one,
where REF is a number, a tag or ``latest`` (:func:`parse_version`, the one parser of
such references). A version is ``complete`` when every file was read whole; otherwise
``meta`` also names the files that changed while they were read (stored as last read)
in ``"changed"`` and those that vanished before (not stored) in ``"vanished"``, paths in
the version (:mod:`aios.data.archive`). Only new chunks are stored: a version costs the
chunks its changes touch, with the default chunk sizes ~1.5 MiB beyond each changed region
(``benchmarks/bench_data.py`` explains and measures it).

Two adds of one dataset at once — two processes, or two `Repository` objects on one
backend — must not both take the next number. Each add stores its data unlocked, then
holds the naming lock ``dataset:NAME`` (:func:`aios.data.locks.hold_name`, files under
``locks/`` like the repository's own locks, so it works on every backend) only while it
reads the versions and writes its snapshot; the next add waits for it and sees it. See
:mod:`aios.data.locks` for why a lock and not renumbering after the fact.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aios.data.locks import hold_name
from aios.data.model import FileNode, Node, RestoreResult, Snapshot, SymlinkNode
from aios.data.repository import Repository
from aios.data.safety import check_source, empty_destination
from aios.data.schema import FileSchema, read_schema
from aios.errors import InvalidInput, NotFound
from aios.names import pattern

__all__ = [
    "LATEST",
    "Change",
    "DataStore",
    "DatasetSummary",
    "DatasetVersion",
    "Diff",
    "Entry",
    "is_dataset",
    "parse_version",
]

NAME = pattern()
"""A dataset, label set or tag name (:mod:`aios.names`)."""
LATEST = "latest"

Progress = Callable[..., None]
"""The repository's progress callback, passed through to ``store_tree`` untouched."""


def parse_version(text: str) -> tuple[str, str]:
    """Splits ``NAME@3``, ``NAME@TAG``, ``NAME@latest`` or ``NAME`` (the latest) into the
    name and the reference; raises InvalidInput naming what is malformed."""
    name, sep, ref = text.partition("@")
    check_name(name, "dataset")
    if not sep:
        return name, LATEST
    if not NAME.fullmatch(ref) or (ref.isdigit() and int(ref) < 1):
        raise InvalidInput(f"{text!r}: after '@' comes a version number, a tag or 'latest'")
    return name, ref


def check_name(name: str, what: str) -> str:
    """Returns ``name`` if it is a valid dataset, label set or tag name."""
    if not NAME.fullmatch(name):
        raise InvalidInput(f"{what} name {name!r}: use letters, digits, '_', '.', '-' (<= 64)")
    return name


def is_dataset(snapshot: Snapshot) -> bool:
    """Whether ``snapshot`` is a dataset version (not a label set or a plain backup)."""
    return "dataset" in snapshot.meta and "labels" not in snapshot.meta


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One version of a dataset, as its snapshot records it; ``new_bytes`` is known only
    to the :meth:`DataStore.add` that stored it (the plaintext its new chunks added).
    ``complete`` is False when a file changed while it was read (``changed``, stored as
    read) or vanished before (``vanished``, left out); versions from before this was
    recorded count as complete."""

    name: str
    version: int
    snapshot: str
    time: datetime
    tree: str
    message: str
    files: int
    bytes: int
    tags: tuple[str, ...] = ()
    schemas: dict[str, FileSchema] = field(default_factory=dict)
    new_bytes: int | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    complete: bool = True
    changed: tuple[str, ...] = ()
    vanished: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """``NAME@VERSION``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def of(cls, snapshot: Snapshot, new_bytes: int | None = None) -> DatasetVersion:
        """The dataset version ``snapshot`` records."""
        meta = snapshot.meta
        return cls(
            name=str(meta["dataset"]),
            version=int(meta["version"]),
            snapshot=snapshot.id,
            time=snapshot.time,
            tree=snapshot.tree,
            message=str(meta.get("message", "")),
            files=int(meta.get("files", 0)),
            bytes=int(meta.get("bytes", 0)),
            tags=tuple(sorted(snapshot.tags)),
            schemas={p: FileSchema.from_json(s) for p, s in meta.get("schemas", {}).items()},
            new_bytes=new_bytes,
            lineage=dict(meta.get("lineage") or {}),
            complete=bool(meta.get("complete", True)),
            changed=tuple(str(p) for p in meta.get("changed") or ()),
            vanished=tuple(str(p) for p in meta.get("vanished") or ()),
        )


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """A dataset in one line: how many versions, and its latest one."""

    name: str
    versions: int
    latest: DatasetVersion


@dataclass(frozen=True, slots=True)
class Entry:
    """A file (or symlink) of a version: its path from the root and its size."""

    path: str
    size: int


@dataclass(frozen=True, slots=True)
class Change:
    """A file whose content differs between two versions."""

    path: str
    old_size: int
    new_size: int


@dataclass(frozen=True, slots=True)
class Diff:
    """What changed from version ``a`` to version ``b``, each list sorted by path."""

    a: DatasetVersion
    b: DatasetVersion
    added: tuple[Entry, ...]
    removed: tuple[Entry, ...]
    modified: tuple[Change, ...]


class DataStore:
    """The datasets of one open :class:`~aios.data.repository.Repository`."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def add(
        self,
        name: str,
        path: Path,
        message: str = "",
        *,
        progress: Progress | None = None,
        lineage: Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        """Stores the file or directory ``path`` as the next version of ``name``.

        ``lineage`` (the job that produced it and the versions it read, when a job
        publishes its output) is kept in the version's ``meta["lineage"]``.

        The source is checked first (:func:`~aios.data.safety.check_source`): a symlink
        pointing out of it, a FIFO or a missing path is refused before anything is
        written. Returns the version with ``new_bytes``, what its new chunks added. A
        file that changes while it is read, or vanishes, does not stop the add: the
        version is kept and says so (``complete``, ``changed``, ``vanished``).
        """
        check_name(name, "dataset")
        source = check_source(path)
        schemas = _schemas(source)
        stored = self.repo.store_tree(source, progress=progress)
        meta: dict[str, Any] = {
            "dataset": name,
            "message": message,
            "files": stored.files,
            "bytes": stored.bytes,
            "schemas": {p: s.to_json() for p, s in schemas.items()},
            "complete": stored.complete,
        }
        if not stored.complete:
            meta["changed"] = list(stored.changed)
            meta["vanished"] = list(stored.vanished)
        if lineage:
            meta["lineage"] = dict(lineage)
        # Packs and index first, so the naming lock is held only to number and record.
        self.repo.flush()
        with hold_name(self.repo.backend, f"dataset:{name}"):
            meta["version"] = self._next_version(name)
            snapshot = self.repo.save_snapshot(
                stored.tree_id, paths=[str(source)], tags={}, meta=meta
            )
        return DatasetVersion.of(snapshot, new_bytes=stored.new_bytes)

    def _next_version(self, name: str) -> int:
        """The number the next version of ``name`` takes; call it holding the naming
        lock ``dataset:NAME``, and save that version's snapshot before releasing it."""
        return max((v.version for v in self.versions(name, missing_ok=True)), default=0) + 1

    def datasets(self) -> list[DatasetSummary]:
        """Every dataset, by name, with its latest version."""
        by_name: dict[str, list[DatasetVersion]] = {}
        for snapshot in self.repo.snapshots():
            if is_dataset(snapshot):
                version = DatasetVersion.of(snapshot)
                by_name.setdefault(version.name, []).append(version)
        return [
            DatasetSummary(name, len(found), max(found, key=lambda v: v.version))
            for name, found in sorted(by_name.items())
        ]

    def versions(self, name: str, *, missing_ok: bool = False) -> list[DatasetVersion]:
        """The versions of ``name``, oldest first; NotFound for no such dataset unless
        ``missing_ok``."""
        found = sorted(
            (
                DatasetVersion.of(s)
                for s in self.repo.snapshots()
                if is_dataset(s) and s.meta["dataset"] == name
            ),
            key=lambda v: v.version,
        )
        if not found and not missing_ok:
            raise NotFound(f"no dataset {name!r}")
        return found

    def version(self, name: str, ref: str | int = LATEST) -> DatasetVersion:
        """The version of ``name`` that ``ref`` names: a number, a tag or ``latest``."""
        versions = self.versions(name)
        text = str(ref)
        if text == LATEST:
            return versions[-1]
        for version in versions:
            if (text.isdigit() and version.version == int(text)) or text in version.tags:
                return version
        raise NotFound(f"dataset {name!r} has no version {text!r}")

    def resolve(self, text: str) -> DatasetVersion:
        """The version that ``NAME@REF`` names."""
        return self.version(*parse_version(text))

    def files(self, version: DatasetVersion) -> Iterator[tuple[str, Node]]:
        """The files and symlinks of ``version``, with their paths from its root."""
        for path, node in self.repo.walk(version.tree):
            if isinstance(node, FileNode | SymlinkNode):
                yield path, node

    def diff(self, name: str, a: str | int, b: str | int) -> Diff:
        """What changed in ``name`` from version ``a`` to version ``b``."""
        old, new = self.version(name, a), self.version(name, b)
        before, after = dict(self.files(old)), dict(self.files(new))
        modified = [
            Change(path, before[path].size, node.size)
            for path, node in sorted(after.items())
            if path in before and _content(before[path]) != _content(node)
        ]
        return Diff(
            a=old,
            b=new,
            added=tuple(Entry(p, n.size) for p, n in sorted(after.items()) if p not in before),
            removed=tuple(Entry(p, n.size) for p, n in sorted(before.items()) if p not in after),
            modified=tuple(modified),
        )

    def get(self, name: str, ref: str | int, dest: Path) -> RestoreResult:
        """Restores version ``ref`` of ``name`` into ``dest``, a new or empty directory.

        The version is looked up before ``dest`` is touched. Files with a damaged chunk
        are not written; the result names them.
        """
        version = self.version(name, ref)
        empty_destination(dest)
        return self.repo.restore(version.tree, dest)

    def tag(self, name: str, ref: str | int, tag: str) -> DatasetVersion:
        """Puts ``tag`` on version ``ref`` of ``name``, taking it off any other version."""
        check_name(tag, "tag")
        if tag.isdigit() or tag == LATEST:
            raise InvalidInput(f"tag {tag!r}: a number or 'latest' already names a version")
        target = self.version(name, ref)
        for version in self.versions(name):
            if tag in version.tags and version.snapshot != target.snapshot:
                self._set_tags(version, [t for t in version.tags if t != tag])
        self._set_tags(target, sorted({*target.tags, tag}))
        return self.version(name, target.version)

    def untag(self, name: str, tag: str) -> DatasetVersion:
        """Takes ``tag`` off the version of ``name`` that holds it."""
        version = self.version(name, tag)
        self._set_tags(version, [t for t in version.tags if t != tag])
        return self.version(name, version.version)

    def _set_tags(self, version: DatasetVersion, tags: Sequence[str]) -> None:
        self.repo.update_snapshot(version.snapshot, tags=dict.fromkeys(tags, ""))


def _content(node: Node) -> tuple[str, ...]:
    if isinstance(node, FileNode):
        return node.content
    if isinstance(node, SymlinkNode):
        return ("->", node.target)
    return ()


def _schemas(source: Path) -> dict[str, FileSchema]:
    """The schemas of the tabular files under ``source`` (or of ``source``, a file), by
    their path in the version: relative to ``source``, or the file's name."""
    if source.is_file():
        schema = read_schema(source)
        return {} if schema is None else {source.name: schema}
    schemas: dict[str, FileSchema] = {}
    for directory, _dirs, names in os.walk(source):
        for name in names:
            path = Path(directory, name)
            schema = None if path.is_symlink() else read_schema(path)
            if schema is not None:
                schemas[path.relative_to(source).as_posix()] = schema
    return schemas
