"""The AIOS data store: a content-addressed, deduplicating, encrypted repository.

Files are cut into chunks by FastCDC, named by keyed BLAKE3, compressed with zstd,
sealed with AES-256-GCM and appended to pack files on a `Backend` (a local directory or
any fsspec filesystem such as S3); directory trees and snapshots are stored the same
way. The design is restic's; see `aios.data.repository`.
"""

from aios.data.backend import Backend, FsspecBackend, LocalBackend
from aios.data.backup import copy_to
from aios.data.crypto import Damaged, UntrustedConfig, WrongPassphrase
from aios.data.model import (
    CheckResult,
    CopyResult,
    DirNode,
    FileNode,
    GcResult,
    IndexRebuild,
    Node,
    RepoStats,
    RestoreResult,
    Snapshot,
    SymlinkNode,
    TreeResult,
)
from aios.data.repository import ChunkerParams, Repository

__all__ = [
    "Backend",
    "CheckResult",
    "ChunkerParams",
    "CopyResult",
    "Damaged",
    "DirNode",
    "FileNode",
    "FsspecBackend",
    "GcResult",
    "IndexRebuild",
    "LocalBackend",
    "Node",
    "RepoStats",
    "Repository",
    "RestoreResult",
    "Snapshot",
    "SymlinkNode",
    "TreeResult",
    "UntrustedConfig",
    "WrongPassphrase",
    "copy_to",
]
