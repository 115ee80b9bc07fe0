"""Label sets on a real repository: versions, validation, and JSONL/COCO/YOLO round trips."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from aios.data.datasets import DataStore
from aios.data.labels import Box, FileLabels, LabelSet, write_jsonl
from aios.data.labelsets import LabelFormat, LabelStore, image_size, parse_image_size
from aios.data.repository import Repository
from aios.errors import InvalidInput, NotFound


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of the given size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + b"IEND"


def jpeg_head(width: int, height: int) -> bytes:
    """The start of a JPEG: SOI, an APP0 segment, then a baseline frame header."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9)
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


ANNOTATIONS = LabelSet.build(
    [
        FileLabels(
            "images/a.png",
            labels=("outdoor",),
            boxes=(Box("cat", 1.0, 2.0, 10.0, 20.0), Box("dog", 30.5, 4.25, 12.0, 8.0)),
        ),
        FileLabels("images/b.png", boxes=(Box("dog", 0.0, 0.0, 32.0, 32.0),)),
        FileLabels("images/c.jpg", labels=("indoor",), boxes=(Box("cat", 5.0, 5.0, 50.0, 25.0),)),
    ]
)
SIZES = {"images/a.png": (64, 48), "images/b.png": (32, 32), "images/c.jpg": (100, 50)}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(png(64, 48))
    (root / "images" / "b.png").write_bytes(png(32, 32))
    (root / "images" / "c.jpg").write_bytes(jpeg_head(100, 50))
    (root / "images" / "d.gif").write_bytes(b"GIF89a not really")
    return root


@pytest.fixture
def labels(store: DataStore, images: Path) -> LabelStore:
    store.add("photos", images)
    return LabelStore(store)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    write_jsonl(ANNOTATIONS, path)
    return path


def sized(labels: LabelSet) -> LabelSet:
    """``labels`` with each file's size as its header says."""
    return replace(
        labels,
        files=tuple(
            replace(f, width=SIZES[f.file][0], height=SIZES[f.file][1]) for f in labels.files
        ),
    )


def test_import_stores_a_versioned_label_set_on_a_dataset_version(
    labels: LabelStore, source: Path
) -> None:
    first = labels.import_labels("photos", 1, "boxes", source, LabelFormat.JSONL)
    second = labels.import_labels("photos", 1, "boxes", source, LabelFormat.JSONL, message="again")

    assert (first.version, second.version) == (1, 2)
    assert (first.dataset, first.dataset_version, first.files, first.boxes) == ("photos", 1, 3, 4)
    assert first.classes == ("cat", "dog", "outdoor", "indoor")
    assert [s.version for s in labels.sets("photos")] == [2]
    assert labels.load(labels.version("photos", "boxes", 1)) == ANNOTATIONS


def test_jsonl_round_trip_is_byte_identical(
    labels: LabelStore, source: Path, tmp_path: Path
) -> None:
    stored = labels.import_labels("photos", "latest", "boxes", source, LabelFormat.JSONL)

    labels.export(stored, tmp_path / "out.jsonl", LabelFormat.JSONL)

    assert (tmp_path / "out.jsonl").read_bytes() == source.read_bytes()


def test_coco_round_trip_keeps_boxes_labels_and_header_sizes(
    labels: LabelStore, source: Path, tmp_path: Path
) -> None:
    stored = labels.import_labels("photos", 1, "boxes", source, LabelFormat.JSONL)
    labels.export(stored, tmp_path / "coco.json", LabelFormat.COCO)
    document = json.loads((tmp_path / "coco.json").read_text())

    again = labels.import_labels("photos", 1, "coco", tmp_path / "coco.json", LabelFormat.COCO)

    assert [c["name"] for c in document["categories"]] == ["cat", "dog", "outdoor", "indoor"]
    assert {i["file_name"]: (i["width"], i["height"]) for i in document["images"]} == SIZES
    assert len(document["annotations"]) == 4
    assert labels.load(again) == sized(ANNOTATIONS)


def test_yolo_round_trip_keeps_every_box_exactly(
    labels: LabelStore, source: Path, tmp_path: Path
) -> None:
    stored = labels.import_labels("photos", 1, "boxes", source, LabelFormat.JSONL)
    labels.export(stored, tmp_path / "yolo", LabelFormat.YOLO)

    again = labels.import_labels("photos", 1, "yolo", tmp_path / "yolo", LabelFormat.YOLO)

    lines = (tmp_path / "yolo" / "images" / "b.txt").read_text().splitlines()
    assert lines == ["1 0.5 0.5 1.0 1.0"]
    assert (tmp_path / "yolo" / "classes.txt").read_text().split() == list(ANNOTATIONS.classes)
    without_image_labels = LabelSet.build(
        [replace(f, labels=()) for f in sized(ANNOTATIONS).files], ANNOTATIONS.classes
    )
    assert labels.load(again) == without_image_labels


def test_image_size_option_covers_files_without_a_readable_header(
    labels: LabelStore, tmp_path: Path
) -> None:
    gif = LabelSet.build([FileLabels("images/d.gif", boxes=(Box("cat", 1, 1, 2, 2),))])
    write_jsonl(gif, tmp_path / "gif.jsonl")
    stored = labels.import_labels("photos", 1, "gif", tmp_path / "gif.jsonl", LabelFormat.JSONL)

    with pytest.raises(InvalidInput, match=r"images/d.gif: COCO needs the image size"):
        labels.export(stored, tmp_path / "no.json", LabelFormat.COCO)
    assert not (tmp_path / "no.json").exists()

    labels.export(stored, tmp_path / "yes.json", LabelFormat.COCO, image_size=(20, 10))
    image = json.loads((tmp_path / "yes.json").read_text())["images"][0]
    assert (image["width"], image["height"]) == (20, 10)


def test_annotating_a_file_the_version_lacks_is_refused_and_nothing_stored(
    labels: LabelStore, repo: Repository, tmp_path: Path
) -> None:
    (tmp_path / "bad.jsonl").write_text(
        '{"file": "images/a.png", "labels": ["cat"]}\n{"file": "images/zzz.png"}\n'
    )
    before = len(repo.snapshots())

    with pytest.raises(InvalidInput, match=r"photos@1 has no file images/zzz.png"):
        labels.import_labels("photos", 1, "boxes", tmp_path / "bad.jsonl", LabelFormat.JSONL)

    assert len(repo.snapshots()) == before
    with pytest.raises(NotFound):
        labels.versions("photos", "boxes")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 1: not JSON"),
        ('{"file": "../etc/passwd"}', "'..' would leave"),
        (
            '{"file": "images/a.png", "boxes": [{"label": "c", "x": 0, "y": 0, "w": 0, "h": 1}]}',
            "positive width",
        ),
        ('{"file": "images/a.png", "colour": "red"}', "unknown field"),
        ('{"file": "images/a.png", "width": 10}', "both 'width' and 'height'"),
    ],
)
def test_malformed_jsonl_is_refused_naming_the_line(
    labels: LabelStore, tmp_path: Path, line: str, message: str
) -> None:
    (tmp_path / "bad.jsonl").write_text(line + "\n")

    with pytest.raises(InvalidInput, match=message):
        labels.import_labels("photos", 1, "boxes", tmp_path / "bad.jsonl", LabelFormat.JSONL)


def test_a_yolo_file_without_a_matching_image_is_refused(
    labels: LabelStore, tmp_path: Path
) -> None:
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo" / "classes.txt").write_text("cat\n")
    (tmp_path / "yolo" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")

    with pytest.raises(InvalidInput, match=r"ghost\.txt: no image"):
        labels.import_labels("photos", 1, "y", tmp_path / "yolo", LabelFormat.YOLO)


def test_image_size_reads_png_and_jpeg_headers() -> None:
    assert image_size(png(640, 480)) == (640, 480)
    assert image_size(jpeg_head(1920, 1080)) == (1920, 1080)
    assert image_size(b"GIF89a") is None


@pytest.mark.parametrize("text", ["640", "0x10", "axb", "10x"])
def test_parse_image_size_refuses_anything_but_w_x_h(text: str) -> None:
    with pytest.raises(InvalidInput, match="--image-size"):
        parse_image_size(text)


@pytest.mark.parametrize(
    ("dest", "message"),
    [
        ("{tmp}/in.jsonl/out.jsonl", "in.jsonl: is not a directory"),
        ("{tmp}/absent/out.jsonl", "absent: no such directory"),
        ("/proc/aios-out.jsonl", "/proc/aios-out.jsonl: cannot be written"),
    ],
)
def test_export_to_where_no_file_can_be_made_is_refused_by_name(
    labels: LabelStore, source: Path, tmp_path: Path, dest: str, message: str
) -> None:
    stored = labels.import_labels("photos", 1, "boxes", source, LabelFormat.JSONL)

    with pytest.raises(InvalidInput, match=message):
        labels.export(stored, Path(dest.format(tmp=tmp_path)), LabelFormat.JSONL)


def test_importing_a_directory_as_a_labels_file_says_it_is_a_directory(
    labels: LabelStore, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="photos: is a directory, not a file"):
        labels.import_labels("photos", 1, "boxes", tmp_path / "photos", LabelFormat.JSONL)
