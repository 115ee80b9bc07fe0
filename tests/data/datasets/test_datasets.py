"""Datasets on a real repository: versions, schemas, diffs, restores and tags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aios.data.datasets import Change, DataStore, Entry, parse_version
from aios.data.schema import Column, FileSchema
from aios.errors import InvalidInput, NotFound


def test_add_numbers_versions_and_records_files_bytes_and_message(
    store: DataStore, tree: Path
) -> None:
    """Each add is the next version, with its file count, bytes and message."""
    first = store.add("digits", tree, "first cut")
    (tree / "extra.bin").write_bytes(os.urandom(4096))
    second = store.add("digits", tree)

    assert (first.version, second.version) == (1, 2)
    assert first.message == "first cut"
    assert first.files == 3
    assert second.files == 4
    assert second.bytes - first.bytes == 4096
    assert [v.version for v in store.versions("digits")] == [1, 2]
    assert store.version("digits", "latest") == store.version("digits", 2)


def test_second_add_stores_only_the_new_bytes(store: DataStore, tree: Path) -> None:
    """Unchanged files are deduplicated: the second add reports only the new file."""
    (tree / "big.bin").write_bytes(os.urandom(256 * 1024))
    first = store.add("digits", tree)
    (tree / "small.bin").write_bytes(os.urandom(1000))

    second = store.add("digits", tree)

    assert first.new_bytes is not None and first.new_bytes >= 256 * 1024
    assert second.new_bytes == 1000


def test_add_records_csv_and_parquet_schemas(store: DataStore, tree: Path) -> None:
    """The schema of every CSV (inferred from its head) and Parquet file is kept."""
    store.add("digits", tree)

    schemas = store.version("digits", 1).schemas

    assert schemas == {
        "train.csv": FileSchema(
            "csv", (Column("id", "int64"), Column("name", "string"), Column("score", "double"))
        ),
        "labels.parquet": FileSchema(
            "parquet", (Column("label", "int32"), Column("text", "string")), rows=3
        ),
    }


def test_unparseable_csv_is_stored_with_the_error_in_its_schema(
    store: DataStore, tmp_path: Path
) -> None:
    """A CSV pyarrow cannot read is still data: the add succeeds and says why."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "rows.csv").write_text("a,b\n1,2\n3,4,5\n")

    version = store.add("bad", tmp_path / "bad")

    schema = version.schemas["rows.csv"]
    assert schema.format == "csv"
    assert schema.error is not None and "column" in schema.error.lower()


def test_a_single_file_is_a_version_of_one_file(store: DataStore, tree: Path) -> None:
    """Adding a file makes a version holding that file under its own name."""
    version = store.add("table", tree / "train.csv")

    assert [path for path, _ in store.files(version)] == ["train.csv"]
    assert list(version.schemas) == ["train.csv"]


def test_diff_lists_added_removed_and_modified_files(store: DataStore, tree: Path) -> None:
    store.add("digits", tree)
    (tree / "sub" / "notes.txt").write_text("second notes, longer\n")
    (tree / "train.csv").unlink()
    (tree / "new.txt").write_text("new\n")
    store.add("digits", tree)

    diff = store.diff("digits", 1, 2)

    assert diff.added == (Entry("new.txt", 4),)
    assert diff.removed == (Entry("train.csv", 35),)
    assert diff.modified == (Change("sub/notes.txt", 12, 21),)
    assert store.diff("digits", 2, 2).modified == ()


def test_get_restores_a_version_byte_for_byte(store: DataStore, tree: Path, tmp_path: Path) -> None:
    store.add("digits", tree)
    (tree / "train.csv").write_text("changed\n")
    store.add("digits", tree)

    result = store.get("digits", 1, tmp_path / "out")

    assert result.damaged == []
    out = tmp_path / "out"
    assert (out / "train.csv").read_text() == "id,name,score\n1,ann,0.5\n2,bob,0.75\n"
    assert (out / "sub" / "notes.txt").read_text() == "first notes\n"
    assert os.readlink(out / "sub" / "link") == "notes.txt"


def test_get_refuses_a_non_empty_destination(store: DataStore, tree: Path, tmp_path: Path) -> None:
    store.add("digits", tree)
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")

    with pytest.raises(InvalidInput, match="not empty"):
        store.get("digits", 1, dest)

    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_a_tag_names_one_version_and_moves(store: DataStore, tree: Path) -> None:
    store.add("digits", tree)
    store.add("digits", tree)

    store.tag("digits", 1, "prod")
    assert store.version("digits", "prod").version == 1

    store.tag("digits", 2, "prod")
    assert store.version("digits", "prod").version == 2
    assert store.version("digits", 1).tags == ()

    store.untag("digits", "prod")
    with pytest.raises(NotFound, match="prod"):
        store.version("digits", "prod")


@pytest.mark.parametrize("tag", ["3", "latest", "bad tag", "../x"])
def test_a_tag_that_could_not_name_a_version_is_refused(
    store: DataStore, tree: Path, tag: str
) -> None:
    store.add("digits", tree)

    with pytest.raises(InvalidInput, match="tag"):
        store.tag("digits", 1, tag)


def test_missing_dataset_and_version_are_not_found(store: DataStore, tree: Path) -> None:
    store.add("digits", tree)

    with pytest.raises(NotFound, match="no dataset 'nope'"):
        store.version("nope")
    with pytest.raises(NotFound, match="no version '7'"):
        store.version("digits", 7)


def test_datasets_lists_each_with_its_latest_version(store: DataStore, tree: Path) -> None:
    store.add("b-set", tree)
    store.add("a-set", tree)
    store.add("a-set", tree)

    listed = store.datasets()

    assert [(d.name, d.versions, d.latest.version) for d in listed] == [
        ("a-set", 2, 2),
        ("b-set", 1, 1),
    ]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("digits", ("digits", "latest")), ("digits@3", ("digits", "3")), ("d@prod", ("d", "prod"))],
)
def test_parse_version_splits_name_and_reference(text: str, parsed: tuple[str, str]) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize("text", ["", "@1", "../x@1", "digits@", "digits@0", "digits@a/b"])
def test_parse_version_refuses_malformed_references(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_version(text)
