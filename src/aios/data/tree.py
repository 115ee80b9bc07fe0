"""Tree blobs: the canonical JSON form of one directory's entries.

A tree is a JSON list of entries sorted by name, serialised with sorted keys and no
spaces, so the same directory always gives the same bytes and therefore the same id
(unchanged directories deduplicate like unchanged chunks). Entries are
``{name, type, mode, size, mtime}`` plus ``content`` (chunk ids) for a file,
``subtree`` (tree id) for a directory and ``target`` for a symlink.
"""

from __future__ import annotations

import json
from typing import Any

from aios.data.crypto import Damaged
from aios.data.model import DirNode, FileNode, Node, SymlinkNode

__all__ = ["check_name", "decode_tree", "encode_tree"]


def check_name(name: str) -> str:
    """Returns `name` if it is one path component; raises `Damaged` for a name that
    could escape its directory (a tree from a tampered or corrupt repository)."""
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise Damaged(f"tree entry name {name!r} is not a single path component")
    return name


def _entry(node: Node) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": node.name,
        "type": node.type,
        "mode": node.mode,
        "size": node.size,
        "mtime": node.mtime,
    }
    if isinstance(node, FileNode):
        entry["content"] = list(node.content)
    elif isinstance(node, DirNode):
        entry["subtree"] = node.subtree
    else:
        entry["target"] = node.target
    return entry


def encode_tree(nodes: list[Node]) -> bytes:
    """The canonical bytes of a directory listing."""
    entries = [_entry(node) for node in sorted(nodes, key=lambda n: n.name)]
    return json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()


def _node(entry: dict[str, Any]) -> Node:
    name = check_name(str(entry["name"]))
    mode, mtime = int(entry["mode"]), float(entry["mtime"])
    kind = entry["type"]
    if kind == "file":
        content = tuple(str(c) for c in entry["content"])
        return FileNode(name=name, mode=mode, size=int(entry["size"]), mtime=mtime, content=content)
    if kind == "dir":
        return DirNode(name=name, mode=mode, mtime=mtime, subtree=str(entry["subtree"]))
    if kind == "symlink":
        return SymlinkNode(name=name, mode=mode, mtime=mtime, target=str(entry["target"]))
    raise Damaged(f"tree entry {name!r} has unknown type {kind!r}")


def decode_tree(data: bytes) -> list[Node]:
    """Parses a tree blob; raises `Damaged` if it is not one."""
    try:
        entries = json.loads(data)
        return [_node(entry) for entry in entries]
    except (ValueError, KeyError, TypeError) as error:
        raise Damaged(f"tree blob is malformed: {error}") from None
