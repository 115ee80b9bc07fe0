"""Label sets: versioned annotations attached to one version of a dataset.

A label set is named per dataset (``digits`` may have ``classes`` and ``boxes``); each
import makes its next version, a snapshot of one file, ``labels.jsonl``, in the
canonical form of :mod:`aios.data.labels`, with ``meta``::

    {"labels": "boxes", "dataset": "digits", "dataset_version": 3, "version": 2,
     "message": "…", "files": 120, "boxes": 431, "classes": ["cat", "dog"]}

An import is refused, before anything is written, when a record names a file that the
dataset version does not hold. Image sizes, which COCO and YOLO need, come from the
records themselves, else ``image_size`` (``--image-size WxH``), else the PNG or JPEG
header of the file in the dataset version.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from aios.data.datasets import LATEST, DatasetVersion, DataStore, check_name
from aios.data.labels import (
    LabelSet,
    SizeOf,
    canonical_jsonl,
    parse_jsonl,
    read_coco,
    read_jsonl,
    read_yolo,
    write_coco,
    write_jsonl,
    write_yolo,
)
from aios.data.locks import hold_name
from aios.data.model import FileNode, Snapshot
from aios.data.safety import empty_destination
from aios.errors import InvalidInput, NotFound

__all__ = ["LabelFormat", "LabelSetVersion", "LabelStore", "image_size", "parse_image_size"]

LABELS_FILE = "labels.jsonl"
HEADER_BYTES = 256 * 1024
"""How much of an image is read for its size: a JPEG's frame header may follow EXIF."""


class LabelFormat(StrEnum):
    """The formats annotations are imported from and exported to."""

    JSONL = "jsonl"
    COCO = "coco"
    YOLO = "yolo"


def parse_image_size(text: str) -> tuple[int, int]:
    """``"640x480"`` as (640, 480); InvalidInput for anything else."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) * int(height):
        raise InvalidInput(f"--image-size {text!r}: expected WIDTHxHEIGHT in pixels, as 640x480")
    return int(width), int(height)


@dataclass(frozen=True, slots=True)
class LabelSetVersion:
    """One version of a label set, and the dataset version it annotates."""

    name: str
    dataset: str
    dataset_version: int
    version: int
    snapshot: str
    tree: str
    time: datetime
    message: str
    files: int
    boxes: int
    classes: tuple[str, ...]

    @classmethod
    def of(cls, snapshot: Snapshot) -> LabelSetVersion:
        """The label set version ``snapshot`` records."""
        meta = snapshot.meta
        return cls(
            name=str(meta["labels"]),
            dataset=str(meta["dataset"]),
            dataset_version=int(meta["dataset_version"]),
            version=int(meta["version"]),
            snapshot=snapshot.id,
            tree=snapshot.tree,
            time=snapshot.time,
            message=str(meta.get("message", "")),
            files=int(meta.get("files", 0)),
            boxes=int(meta.get("boxes", 0)),
            classes=tuple(meta.get("classes", ())),
        )


class LabelStore:
    """The label sets of the datasets in one :class:`DataStore`."""

    def __init__(self, data: DataStore) -> None:
        self.data = data
        self.repo = data.repo

    def import_labels(
        self,
        dataset: str,
        ref: str | int,
        name: str,
        source: Path,
        fmt: LabelFormat,
        *,
        image_size: tuple[int, int] | None = None,
        message: str = "",
    ) -> LabelSetVersion:
        """Reads ``source`` in ``fmt`` and stores it as the next version of label set
        ``name`` on version ``ref`` of ``dataset``; InvalidInput, with nothing stored,
        for a malformed source or a record naming a file the version does not hold."""
        check_name(name, "label set")
        target = self.data.version(dataset, ref)
        nodes = self._file_nodes(target)
        size_of = self._sizes(nodes, image_size)
        if fmt is LabelFormat.JSONL:
            labels = read_jsonl(source)
        elif fmt is LabelFormat.COCO:
            labels = read_coco(source)
        else:
            labels = read_yolo(source, nodes, size_of)
        missing = [f.file for f in labels.files if f.file not in nodes]
        if missing:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if missing[3:] else ""
            )
            raise InvalidInput(f"{target.ref} has no file {shown}: annotations must name its files")
        meta: dict[str, Any] = {
            "labels": name,
            "dataset": target.name,
            "dataset_version": target.version,
            "message": message,
            "files": len(labels.files),
            "boxes": labels.boxes(),
            "classes": list(labels.classes),
        }
        with tempfile.TemporaryDirectory(prefix="aios-labels-") as staging:
            Path(staging, LABELS_FILE).write_text(canonical_jsonl(labels), encoding="utf-8")
            stored = self.repo.store_tree(Path(staging))
        self.repo.flush()
        # Numbered under a naming lock, as dataset versions are (aios.data.datasets).
        with hold_name(self.repo.backend, f"labels:{target.name}:{name}"):
            previous = self.versions(dataset, name, missing_ok=True)
            meta["version"] = max((v.version for v in previous), default=0) + 1
            snapshot = self.repo.save_snapshot(
                stored.tree_id, paths=[str(source.resolve())], tags={}, meta=meta
            )
        return LabelSetVersion.of(snapshot)

    def sets(self, dataset: str | None = None) -> list[LabelSetVersion]:
        """The latest version of every label set (of ``dataset``, if given)."""
        latest: dict[tuple[str, str], LabelSetVersion] = {}
        for version in self._all():
            key = (version.dataset, version.name)
            if (dataset is None or version.dataset == dataset) and (
                key not in latest or latest[key].version < version.version
            ):
                latest[key] = version
        return [latest[k] for k in sorted(latest)]

    def versions(
        self, dataset: str, name: str, *, missing_ok: bool = False
    ) -> list[LabelSetVersion]:
        """The versions of label set ``name`` of ``dataset``, oldest first."""
        found = sorted(
            (v for v in self._all() if v.dataset == dataset and v.name == name),
            key=lambda v: v.version,
        )
        if not found and not missing_ok:
            raise NotFound(f"dataset {dataset!r} has no label set {name!r}")
        return found

    def version(self, dataset: str, name: str, ref: str | int = LATEST) -> LabelSetVersion:
        """The version ``ref`` (a number or ``latest``) of label set ``name``."""
        versions = self.versions(dataset, name)
        if str(ref) == LATEST:
            return versions[-1]
        for version in versions:
            if str(version.version) == str(ref):
                return version
        raise NotFound(f"label set {name!r} of {dataset!r} has no version {ref!r}")

    def load(self, version: LabelSetVersion) -> LabelSet:
        """The annotations ``version`` holds, read back from the repository."""
        for path, node in self.repo.walk(version.tree):
            if path.strip("/") == LABELS_FILE and isinstance(node, FileNode):
                text = b"".join(self.repo.read_file(node)).decode("utf-8")
                return parse_jsonl(text, f"{version.name}@{version.version}", version.classes)
        raise NotFound(f"label set {version.name}@{version.version} holds no {LABELS_FILE}")

    def export(
        self,
        version: LabelSetVersion,
        dest: Path,
        fmt: LabelFormat,
        *,
        image_size: tuple[int, int] | None = None,
    ) -> LabelSet:
        """Writes ``version`` to ``dest`` in ``fmt``: a new file for JSONL and COCO, a new
        or empty directory for YOLO. Refuses to overwrite; checks sizes before writing."""
        labels = self.load(version)
        dataset = self.data.version(version.dataset, version.dataset_version)
        size_of = self._sizes(self._file_nodes(dataset), image_size)
        if fmt is LabelFormat.YOLO:
            empty_destination(dest)
            with tempfile.TemporaryDirectory(prefix="aios-yolo-") as staging:
                write_yolo(labels, Path(staging, "out"), size_of)  # fails before dest is made
                dest.mkdir(parents=True, exist_ok=True)
                for item in sorted(Path(staging, "out").iterdir()):
                    shutil.move(item, dest / item.name)
            return labels
        if dest.exists():
            raise InvalidInput(f"{dest}: already exists; export to a new file")
        if not dest.parent.is_dir():
            problem = "is not a directory" if dest.parent.exists() else "no such directory"
            raise InvalidInput(f"{dest.parent}: {problem}")
        staged = dest.with_name(f".{dest.name}.partial")
        try:
            # Made empty first, so a place no file can be made (/proc/x, a read-only
            # filesystem) is refused by name before anything is written.
            staged.touch()
        except OSError as exc:
            raise InvalidInput(f"{dest}: cannot be written ({exc.strerror})") from None
        try:
            if fmt is LabelFormat.JSONL:
                write_jsonl(labels, staged)
            else:
                write_coco(labels, staged, size_of)
            staged.replace(dest)  # a reader never sees half a file
        finally:
            staged.unlink(missing_ok=True)
        return labels

    def _all(self) -> list[LabelSetVersion]:
        return [LabelSetVersion.of(s) for s in self.repo.snapshots() if "labels" in s.meta]

    def _file_nodes(self, version: DatasetVersion) -> dict[str, FileNode]:
        return {p.strip("/"): n for p, n in self.data.files(version) if isinstance(n, FileNode)}

    def _sizes(self, nodes: dict[str, FileNode], fallback: tuple[int, int] | None) -> SizeOf:
        """Image sizes: ``fallback`` when given, else read from PNG/JPEG headers."""
        cache: dict[str, tuple[int, int] | None] = {}

        def size_of(file: str) -> tuple[int, int] | None:
            if fallback is not None:
                return fallback
            if file not in cache:
                cache[file] = self._header_size(nodes[file]) if file in nodes else None
            return cache[file]

        return size_of

    def _header_size(self, node: FileNode) -> tuple[int, int] | None:
        head = b""
        for piece in self.repo.read_file(node):
            head += piece
            if len(head) >= HEADER_BYTES:
                break
        return image_size(head[:HEADER_BYTES])


def image_size(head: bytes) -> tuple[int, int] | None:
    """The (width, height) in a PNG's or a baseline/progressive JPEG's first bytes, or None
    (another format, or a header beyond ``head``)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if not head.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 9 < len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(head[at + 5 : at + 7], "big")
            width = int.from_bytes(head[at + 7 : at + 9], "big")
            return (width, height) if width and height else None
        at += 2 + int.from_bytes(head[at + 2 : at + 4], "big")
    return None
