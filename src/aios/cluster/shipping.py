"""Files of the control plane's machine that a command names, carried to a Ray node.

A serving replica's command names its model versions by their paths in the registry
(``--model iris:1=onnx:/home/…/registry/…/model.onnx``), which exist only where the
control plane runs. Before a replica starts on a node, every path under a shipped root
that its command names is packed (a file or a directory, as a tar archive), sent with
the launch, unpacked on the node under the agent's ``shipped/`` directory, and the
command rewritten to name the node's copy. Registry artifacts never change under a
path, so a node keeps what it received and is sent each path once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import tarfile
import threading
from collections.abc import Sequence
from pathlib import Path

from aios.executors.base import LaunchSpec

__all__ = ["Shipping", "unpack"]


class Shipping:
    """Which paths under ``roots`` each node has received."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = tuple(str(Path(root)) for root in roots)
        self._pattern = (
            re.compile("|".join(f"{re.escape(root)}/[^:=\\s]+" for root in self.roots))
            if self.roots
            else None
        )
        self._lock = threading.Lock()
        self._sent: dict[str, set[str]] = {}

    def prepare(self, spec: LaunchSpec, node_home: str) -> tuple[LaunchSpec, dict[str, bytes]]:
        """``spec`` with the shipped paths its command names rewritten to their copies
        under ``node_home``, and the archives the node still lacks, by destination."""
        if self._pattern is None:
            return spec, {}
        pattern = self._pattern
        with self._lock:
            sent = set(self._sent.get(spec.node, ()))
        bundles: dict[str, bytes] = {}

        def rewrite(match: re.Match[str]) -> str:
            source = match.group(0)
            digest = hashlib.sha256(source.encode()).hexdigest()[:16]
            dest = f"{node_home}/shipped/{digest}/{Path(source).name}"
            if dest not in sent and dest not in bundles and os.path.exists(source):
                bundles[dest] = pack(Path(source))
            return dest

        command = [pattern.sub(rewrite, arg) for arg in spec.command]
        sandbox = spec.sandbox
        if sandbox is not None and sandbox.mounts:  # the model files bound into it
            mounts = tuple(pattern.sub(rewrite, mount) for mount in sandbox.mounts)
            sandbox = dataclasses.replace(sandbox, mounts=mounts)
        return dataclasses.replace(spec, command=command, sandbox=sandbox), bundles

    def delivered(self, node: str, bundles: dict[str, bytes]) -> None:
        with self._lock:
            self._sent.setdefault(node, set()).update(bundles)

    def forget(self, node: str) -> None:
        with self._lock:
            self._sent.pop(node, None)


def pack(path: Path) -> bytes:
    """``path`` (a file or a directory, links followed) as an uncompressed tar archive
    whose one top-level member is named like it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        archive.add(path.resolve(), arcname=path.name)
    return out.getvalue()


def unpack(archive: bytes, dest: Path) -> None:
    """Unpacks an archive made by :func:`pack` so that its member is ``dest``; does
    nothing when ``dest`` exists (a node keeps what it was sent). The member lands
    under a temporary directory first, then is renamed into place."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".partial-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as members:
            members.extractall(partial, filter="data")
        (partial / dest.name).replace(dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
