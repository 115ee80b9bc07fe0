"""Restoring a tree to a directory, verifying every chunk on the way.

The plan (every path to write) is made first from the trees, so a tree naming a path
that would escape `dest` stops the restore before anything is written. Each file is
written to a temporary name beside its target and renamed only when every chunk has
decrypted and hashed to its id; a damaged file is therefore never written (a stale
copy from an earlier restore is left alone), its path is reported, and the rest go on.
"""

from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from aios.data.crypto import Damaged
from aios.data.locks import acquire
from aios.data.model import DirNode, FileNode, Node, RestoreResult, SymlinkNode
from aios.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Callable

    from aios.data.repository import Repository

__all__ = ["restore"]


def _inside(dest: Path, target: Path) -> bool:
    """True when `target`'s parent, resolved through any symlink already on disk, is
    `dest` or below it."""
    parent = target.parent.resolve()
    return parent == dest or dest in parent.parents


def _write_file(repo: Repository, node: FileNode, target: Path) -> bool:
    """Writes one file through a temporary name; returns False (nothing written) when a
    chunk is damaged or missing."""
    temp = target.with_name(f".{target.name}.aios-restore-{secrets.token_hex(4)}")
    try:
        with temp.open("wb") as handle:
            for chunk in repo.read_file(node):
                handle.write(chunk)
    except Damaged:
        temp.unlink(missing_ok=True)
        return False
    except BaseException:
        # Never leave a temporary file behind, whatever stopped the write.
        temp.unlink(missing_ok=True)
        raise
    os.chmod(temp, node.mode)
    os.utime(temp, (node.mtime, node.mtime))
    if target.is_symlink() or target.is_file():
        target.unlink()
    os.replace(temp, target)
    return True


def _plan(
    repo: Repository, tree_id: str, include: Callable[[str], bool] | None, damaged: list[str]
) -> list[tuple[str, Node]]:
    plan: list[tuple[str, Node]] = []

    def visit(prefix: str, subtree: str) -> None:
        try:
            nodes = repo.load_tree(subtree)
        except Damaged:
            damaged.append(prefix.rstrip("/") or ".")
            return
        for node in nodes:
            rel = f"{prefix}{node.name}"
            if isinstance(node, DirNode):
                plan.append((rel, node))
                visit(f"{rel}/", node.subtree)
            elif include is None or include(rel):
                plan.append((rel, node))

    visit("", tree_id)
    return plan


def restore(
    repo: Repository,
    tree_id: str,
    dest: Path,
    *,
    include: Callable[[str], bool] | None = None,
    workers: int = 2,
) -> RestoreResult:
    """Restores the tree `tree_id` under `dest` (created if missing). `include(path)`
    picks files and symlinks by relative path; directories are made when something in
    them is restored. Raises `InvalidInput` if a path would land outside `dest`."""
    lock = acquire(repo.backend, exclusive=False)
    try:
        damaged: list[str] = []
        plan = _plan(repo, tree_id, include, damaged)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        wanted_dirs = {rel.rsplit("/", 1)[0] for rel, node in plan if node.type != "dir"}
        dirs = [
            (rel, node)
            for rel, node in plan
            if isinstance(node, DirNode)
            and (include is None or any(w == rel or w.startswith(f"{rel}/") for w in wanted_dirs))
        ]
        for rel, _node in dirs:
            target = dest / rel
            if not _inside(root, target) or target.is_symlink():
                raise InvalidInput(f"restoring {rel!r} would write outside {dest}")
            target.mkdir(exist_ok=True)
        files = [(rel, n) for rel, n in plan if isinstance(n, FileNode)]
        for rel, node in plan:
            if not isinstance(node, DirNode) and not _inside(root, dest / rel):
                raise InvalidInput(f"restoring {rel!r} would write outside {dest}")
        for rel, node in plan:
            if isinstance(node, SymlinkNode):
                target = dest / rel
                if target.is_symlink() or target.is_file():
                    target.unlink()
                os.symlink(node.target, target)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aios-restore") as pool:
            outcomes = list(
                pool.map(lambda item: _write_file(repo, item[1], dest / item[0]), files)
            )
        written = 0
        size = 0
        for (rel, node), ok in zip(files, outcomes, strict=True):
            if ok:
                written += 1
                size += node.size
            else:
                damaged.append(rel)
        for rel, node in reversed(dirs):
            os.chmod(dest / rel, node.mode | 0o700)
            os.utime(dest / rel, (node.mtime, node.mtime))
        return RestoreResult(files=written, bytes=size, damaged=sorted(damaged))
    finally:
        lock.release()
