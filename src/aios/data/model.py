"""The values the data store hands out: tree nodes, snapshots and the results of its work.

All are frozen dataclasses so that a caller may keep them, compare them and pass them
between threads without copying. Ids are lowercase hex strings: chunk and tree ids are
keyed BLAKE3 of the plaintext, pack ids SHA-256 of the stored bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "BlobType",
    "CheckResult",
    "CopyResult",
    "DirNode",
    "FileNode",
    "GcResult",
    "IndexRebuild",
    "Node",
    "NodeType",
    "RepoStats",
    "RestoreResult",
    "Snapshot",
    "SymlinkNode",
    "TreeResult",
]

BlobType = Literal["data", "tree"]
NodeType = Literal["file", "dir", "symlink"]


@dataclass(frozen=True)
class FileNode:
    """A regular file: its bytes are the concatenation of the chunks named in `content`."""

    name: str
    mode: int
    size: int
    mtime: float
    content: tuple[str, ...]
    type: Literal["file"] = "file"


@dataclass(frozen=True)
class DirNode:
    """A directory: its entries are the tree blob `subtree`."""

    name: str
    mode: int
    mtime: float
    subtree: str
    size: int = 0
    type: Literal["dir"] = "dir"


@dataclass(frozen=True)
class SymlinkNode:
    """A symbolic link, kept as a link: `target` is stored as read and never followed."""

    name: str
    mode: int
    mtime: float
    target: str
    size: int = 0
    type: Literal["symlink"] = "symlink"


Node = FileNode | DirNode | SymlinkNode
"""One entry of a tree; ``isinstance(x, Node)`` works on the union."""


@dataclass(frozen=True)
class Snapshot:
    """A saved tree with where it came from (`paths`), mutable `tags` and free `meta`."""

    id: str
    time: datetime
    tree: str
    paths: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        """The first 8 hex digits, enough to name a snapshot on a command line."""
        return self.id[:8]


@dataclass(frozen=True)
class TreeResult:
    """What `Repository.store_tree` stored: `new_bytes` and `new_chunks` count only the
    plaintext of chunks the repository did not hold before (dedup makes them small).
    `changed` are the files (paths in the tree) that changed while they were read, on
    every try, and are stored as last read; `vanished` the entries that disappeared
    between the walk and their reading, and are not stored."""

    tree_id: str
    files: int
    bytes: int
    new_bytes: int
    new_chunks: int
    changed: tuple[str, ...] = ()
    vanished: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every file was read whole, as it was while it was read."""
        return not self.changed and not self.vanished


@dataclass(frozen=True)
class RestoreResult:
    """Files and bytes written by a restore, and the paths of files not written because
    a chunk of theirs failed verification (or is missing)."""

    files: int
    bytes: int
    damaged: list[str]


@dataclass(frozen=True)
class CheckResult:
    """The verdict of `Repository.check`.

    `damaged_snapshots` maps a snapshot id to the paths inside it that cannot be read
    back intact (a file with a damaged chunk, or a directory whose tree is damaged);
    `errors` says in words what was found, for a report. `index_damaged` says that an
    index file is unreadable or that snapshots use blobs only a pack header names
    (`Repository.rebuild_index` repairs both); `unindexed_packs` are packs no index
    names (an interrupted writer leaves some; they are not damage by themselves).
    `snapshots`, `packs` and `blobs` count what was checked.
    """

    ok: bool
    damaged_packs: list[str]
    damaged_blobs: list[str]
    damaged_snapshots: dict[str, list[str]]
    errors: list[str] = field(default_factory=list)
    index_damaged: bool = False
    unindexed_packs: list[str] = field(default_factory=list)
    snapshots: int = 0
    packs: int = 0
    blobs: int = 0


@dataclass(frozen=True)
class IndexRebuild:
    """What `Repository.rebuild_index` wrote: the packs and blobs the new index names,
    and the packs left out because neither their header nor the old index could say
    what they hold."""

    packs: int
    blobs: int
    unreadable: list[str]


@dataclass(frozen=True)
class GcResult:
    """What garbage collection removed and rewrote."""

    removed_packs: int
    repacked_packs: int
    removed_blobs: int
    kept_blobs: int
    freed_bytes: int
    removed_temporaries: int = 0
    """Temporary files of writes killed midway (older than `gc.TEMPORARY_GRACE`)."""


@dataclass(frozen=True)
class CopyResult:
    """What `copy_to` transferred: only packs/blobs the destination lacked; `copied`
    the ids of the snapshots it copied."""

    snapshots: int
    blobs: int
    packs: int
    bytes: int
    copied: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepoStats:
    """Sizes of a repository: `stored_bytes` on the backend (packs) against the
    plaintext of its unique blobs (`raw_bytes`)."""

    snapshots: int
    packs: int
    blobs: int
    stored_bytes: int
    raw_bytes: int
    encrypted: bool
