"""Annotations of a dataset's files, and the three formats they travel in: JSONL, COCO, YOLO.

A :class:`LabelSet` holds, per file of a dataset version, its class labels (what the
whole image is) and its bounding boxes in pixels, COCO's way (``x, y`` the top-left
corner, ``w, h`` the size). Its canonical form is JSONL, one record per file, sorted by
path, keys sorted, so the same annotations are always the same bytes (and the same
chunks in the store):

    {"boxes": [{"h": 20.0, "label": "cat", "w": 10.0, "x": 1.0, "y": 2.0}], "file": "a.png",
     "height": 480, "labels": ["indoor"], "width": 640}

``width``/``height`` are present when known. COCO keeps everything (image-level labels
ride in an extra ``labels`` field of each image, which COCO tools ignore). YOLO keeps
boxes only, normalised to the image size, so it needs every image's size; image-level
labels do not survive it. This module is pure: reading and writing local files, no store.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from aios.data.safety import member_path
from aios.errors import InvalidInput

__all__ = [
    "Box",
    "FileLabels",
    "LabelSet",
    "SizeOf",
    "canonical_jsonl",
    "parse_jsonl",
    "read_coco",
    "read_jsonl",
    "read_yolo",
    "write_coco",
    "write_jsonl",
    "write_yolo",
]

SizeOf = Callable[[str], "tuple[int, int] | None"]
"""Gives a dataset file's image size (width, height) in pixels, or None if unknown."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
PIXEL_DIGITS = 6
"""Pixels coming back from YOLO's fractions are rounded to this many decimals, so a box
on whole or short-decimal pixels round-trips exactly despite float arithmetic."""


@dataclass(frozen=True, slots=True)
class Box:
    """A bounding box in pixels: top-left corner ``(x, y)``, width ``w``, height ``h``."""

    label: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True)
class FileLabels:
    """What one file of the dataset is annotated with; ``file`` is relative to its root."""

    file: str
    labels: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = ()
    width: int | None = None
    height: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The canonical JSONL record of this file."""
        record: dict[str, Any] = {
            "file": self.file,
            "labels": list(self.labels),
            "boxes": [
                {"label": b.label, "x": b.x, "y": b.y, "w": b.w, "h": b.h} for b in self.boxes
            ],
        }
        if self.width is not None and self.height is not None:
            record["width"], record["height"] = self.width, self.height
        return record


@dataclass(frozen=True, slots=True)
class LabelSet:
    """Annotations of a dataset version's files, sorted by file, with the ordered class
    names (their order gives YOLO's class numbers and COCO's category ids)."""

    classes: tuple[str, ...]
    files: tuple[FileLabels, ...] = field(default=())

    @classmethod
    def build(cls, files: Iterable[FileLabels], classes: Sequence[str] = ()) -> LabelSet:
        """Returns the set of ``files`` sorted by path, with ``classes`` first and any other
        label in order of first use (a file's boxes before its image labels); InvalidInput
        for a file annotated twice."""
        ordered = sorted(files, key=lambda f: f.file)
        for before, after in itertools.pairwise(ordered):
            if before.file == after.file:
                raise InvalidInput(f"file {before.file!r} is annotated twice")
        names = dict.fromkeys(classes)
        for entry in ordered:
            names.update(dict.fromkeys(box.label for box in entry.boxes))
            names.update(dict.fromkeys(entry.labels))
        return cls(classes=tuple(names), files=tuple(ordered))

    def boxes(self) -> int:
        """How many boxes the set holds, over all files."""
        return sum(len(f.boxes) for f in self.files)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what}: {value!r} is not a finite number")
    return float(value)


def _size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(f"{what}: {value!r} is not a positive whole number of pixels")
    return value


def _label(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise InvalidInput(f"{what}: {value!r} is not a label (a non-empty one-line string)")
    return value


def _box(label: str, values: Sequence[Any], where: str) -> Box:
    if len(values) != 4:
        raise InvalidInput(f"{where}: a box is x, y, w, h")
    box = Box(label, *(_number(v, f"{where}: {k}") for k, v in zip("xywh", values, strict=True)))
    if box.w <= 0 or box.h <= 0:
        raise InvalidInput(f"{where}: a box needs a positive width and height")
    return box


def _record(data: Any, where: str) -> FileLabels:
    """A JSONL record as :class:`FileLabels`; InvalidInput naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: expected a JSON object")
    unknown = set(data) - {"file", "labels", "boxes", "width", "height"}
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if not isinstance(data.get("file"), str):
        raise InvalidInput(f"{where}: 'file' must be a path in the dataset")
    file = member_path(data["file"], what=f"{where}: file")
    labels, boxes = data.get("labels", []), data.get("boxes", [])
    if not isinstance(labels, list) or not isinstance(boxes, list):
        raise InvalidInput(f"{where}: 'labels' and 'boxes' must be lists")
    parsed: list[Box] = []
    for i, box in enumerate(boxes):
        spot = f"{where}: boxes[{i}]"
        if not isinstance(box, dict) or set(box) != {"label", "x", "y", "w", "h"}:
            raise InvalidInput(f"{spot}: expected exactly label, x, y, w, h")
        label = _label(box["label"], f"{spot}: label")
        parsed.append(_box(label, [box[k] for k in "xywh"], spot))
    width, height = data.get("width"), data.get("height")
    if (width is None) != (height is None):
        raise InvalidInput(f"{where}: give both 'width' and 'height' or neither")
    return FileLabels(
        file=file,
        labels=tuple(_label(v, f"{where}: labels") for v in labels),
        boxes=tuple(parsed),
        width=None if width is None else _size(width, f"{where}: width"),
        height=None if height is None else _size(height, f"{where}: height"),
    )


def read_jsonl(path: Path) -> LabelSet:
    """Reads JSONL annotations; InvalidInput naming the line of a malformed record."""
    try:
        text = _opened(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name}: not UTF-8 text") from None
    return parse_jsonl(text, path.name)


def parse_jsonl(text: str, source: str, classes: Sequence[str] = ()) -> LabelSet:
    """Parses JSONL annotations read from ``source`` (named in errors), with ``classes``
    first in the class order."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not JSON ({exc.msg})") from None
        records.append(_record(data, where))
    return LabelSet.build(records, classes)


def canonical_jsonl(labels: LabelSet) -> str:
    """The canonical JSONL text of ``labels``: the same annotations, the same bytes."""
    return "".join(
        json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
        for entry in labels.files
    )


def write_jsonl(labels: LabelSet, path: Path) -> None:
    """Writes the canonical JSONL of ``labels`` to ``path``."""
    path.write_text(canonical_jsonl(labels), encoding="utf-8")


def _opened(path: Path) -> Path:
    if path.is_dir():
        raise InvalidInput(f"{path}: is a directory, not a file (YOLO labels are read from one)")
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    return path


def read_coco(path: Path) -> LabelSet:
    """Reads a COCO detection file (images, annotations, categories)."""
    try:
        data = json.loads(_opened(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path.name}: not a JSON document ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InvalidInput(f"{path.name}: a COCO file is an object with an 'images' list")
    try:
        categories = {c["id"]: _label(c["name"], "category name") for c in data["categories"]}
        images: dict[Any, dict[str, Any]] = {}
        for image in data["images"]:
            spot = f"{path.name}: image {image.get('id')!r}"
            images[image["id"]] = {
                "file": member_path(image["file_name"], what=f"{spot}: file_name"),
                "width": _size(image["width"], f"{spot}: width"),
                "height": _size(image["height"], f"{spot}: height"),
                "labels": [_label(v, f"{spot}: labels") for v in image.get("labels", [])],
                "boxes": [],
            }
        for note in data.get("annotations", []):
            spot = f"{path.name}: annotation {note.get('id')!r}"
            if note["image_id"] not in images or note["category_id"] not in categories:
                raise InvalidInput(f"{spot}: unknown image_id or category_id")
            if not isinstance(note["bbox"], list):
                raise InvalidInput(f"{spot}: 'bbox' must be [x, y, w, h]")
            box = _box(categories[note["category_id"]], note["bbox"], spot)
            images[note["image_id"]]["boxes"].append(box)
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"{path.name}: not a COCO file (missing or bad {exc})") from None
    files = [
        FileLabels(i["file"], tuple(i["labels"]), tuple(i["boxes"]), i["width"], i["height"])
        for i in images.values()
    ]
    return LabelSet.build(files, [categories[k] for k in sorted(categories)])


def _sized(entry: FileLabels, size_of: SizeOf, purpose: str) -> tuple[int, int]:
    if entry.width is not None and entry.height is not None:
        return entry.width, entry.height
    size = size_of(entry.file)
    if size is None:
        raise InvalidInput(
            f"{entry.file}: {purpose} needs the image size, which is not recorded and not "
            "readable from the file; give --image-size WxH"
        )
    return size


def write_coco(labels: LabelSet, path: Path, size_of: SizeOf) -> None:
    """Writes ``labels`` as one COCO file; category ids follow the class order from 1."""
    category = {name: i for i, name in enumerate(labels.classes, start=1)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, entry in enumerate(labels.files, start=1):
        width, height = _sized(entry, size_of, "COCO")
        image: dict[str, Any] = {
            "id": image_id,
            "file_name": entry.file,
            "width": width,
            "height": height,
        }
        if entry.labels:
            image["labels"] = list(entry.labels)
        images.append(image)
        for box in entry.boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category[box.label],
                    "bbox": [box.x, box.y, box.w, box.h],
                    "area": box.w * box.h,
                    "iscrowd": 0,
                }
            )
    document = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in category.items()],
    }
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def write_yolo(labels: LabelSet, directory: Path, size_of: SizeOf) -> None:
    """Writes ``classes.txt`` and, per annotated file, ``<its path without suffix>.txt``
    with one ``class cx cy w h`` line per box, normalised to the image size."""
    number = {name: i for i, name in enumerate(labels.classes)}
    stems: dict[str, str] = {}
    lines_of: dict[str, list[str]] = {}
    for entry in labels.files:
        stem = str(PurePosixPath(entry.file).with_suffix(".txt"))
        if stem in stems or stem == "classes.txt":
            raise InvalidInput(f"YOLO: {entry.file} and {stems.get(stem)} map to one {stem}")
        stems[stem] = entry.file
        width, height = _sized(entry, size_of, "YOLO") if entry.boxes else (1, 1)
        lines_of[stem] = [
            f"{number[b.label]} {(b.x + b.w / 2) / width!r} {(b.y + b.h / 2) / height!r} "
            f"{b.w / width!r} {b.h / height!r}"
            for b in entry.boxes
        ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "classes.txt").write_text("".join(f"{c}\n" for c in labels.classes), "utf-8")
    for stem, lines in lines_of.items():
        target = directory / stem
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def read_yolo(directory: Path, dataset_files: Iterable[str], size_of: SizeOf) -> LabelSet:
    """Reads a YOLO directory: ``classes.txt`` and one ``.txt`` per image, matched to the
    dataset's image with the same path but its suffix (or under ``images/`` for a
    ``labels/`` text file, YOLO's own layout)."""
    if not directory.is_dir():
        raise InvalidInput(f"{directory}: a YOLO export is a directory")
    classes_file = directory / "classes.txt"
    if not classes_file.is_file():
        raise InvalidInput(f"{directory}: no classes.txt naming the class numbers")
    classes = [c.strip() for c in classes_file.read_text("utf-8").splitlines() if c.strip()]
    images: dict[str, list[str]] = {}
    for file in dataset_files:
        pure = PurePosixPath(file)
        if pure.suffix.lower() in IMAGE_SUFFIXES:
            images.setdefault(str(pure.with_suffix("")), []).append(file)
    files = []
    for text_file in sorted(directory.rglob("*.txt")):
        stem = text_file.relative_to(directory).with_suffix("").as_posix()
        if stem == "classes":
            continue
        found = images.get(stem) or images.get(_images_twin(stem), [])
        if len(found) != 1:
            problem = "no image" if not found else f"several images ({', '.join(found)})"
            raise InvalidInput(f"{stem}.txt: {problem} in the dataset version match it")
        files.append(_yolo_file(text_file, found[0], classes, size_of))
    return LabelSet.build(files, classes)


def _images_twin(stem: str) -> str:
    parts = PurePosixPath(stem).parts
    return "/".join(("images", *parts[1:])) if parts and parts[0] == "labels" else stem


def _yolo_file(text_file: Path, image: str, classes: list[str], size_of: SizeOf) -> FileLabels:
    lines = [line.split() for line in text_file.read_text("utf-8").splitlines() if line.strip()]
    if not lines:
        return FileLabels(image)
    size = size_of(image)
    if size is None:
        raise InvalidInput(f"{image}: YOLO needs the image size; give --image-size WxH")
    width, height = size
    boxes = []
    for number, fields in enumerate(lines, start=1):
        where = f"{text_file.name} line {number}"
        if len(fields) != 5 or not fields[0].isdigit() or int(fields[0]) >= len(classes):
            raise InvalidInput(f"{where}: expected 'class cx cy w h' with a class in classes.txt")
        try:
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise InvalidInput(f"{where}: cx cy w h must be numbers") from None
        pixels = (
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            w * width,
            h * height,
        )
        x, y, pw, ph = (round(v, PIXEL_DIGITS) + 0.0 for v in pixels)
        boxes.append(_box(classes[int(fields[0])], (x, y, pw, ph), where))
    return FileLabels(image, boxes=tuple(boxes), width=width, height=height)
