"""The schema of the tabular files in a dataset version: CSV and Parquet, read by pyarrow.

A version's metadata records, for every ``.csv`` and ``.parquet`` file, the columns and
their Arrow types, so ``aios data versions`` can show what a version holds and a change
of schema between two versions is visible without reading the data. A CSV's types are
inferred from its first block only (a head sample), as pyarrow's streaming reader does:
the schema of a multi-gigabyte file costs one block. A file pyarrow cannot parse gets a
schema with ``error`` set instead of failing the add: it is still data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TABULAR_SUFFIXES", "Column", "FileSchema", "read_schema"]

CSV_SAMPLE_BYTES = 1 << 20
"""How much of a CSV pyarrow reads to infer its column types."""
TABULAR_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""File suffixes (lower case) whose schema is recorded, and the format each one means."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, its Arrow type as pyarrow prints it, and if it may be null."""

    name: str
    type: str
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class FileSchema:
    """The schema of one tabular file; ``rows`` is known for Parquet (from its footer)."""

    format: str
    columns: tuple[Column, ...] = ()
    rows: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The schema as a JSON-able dict, as stored in a version's metadata."""
        data: dict[str, Any] = {
            "format": self.format,
            "columns": [
                {"name": c.name, "type": c.type, "nullable": c.nullable} for c in self.columns
            ],
        }
        if self.rows is not None:
            data["rows"] = self.rows
        if self.error is not None:
            data["error"] = self.error
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileSchema:
        """The inverse of :meth:`to_json`."""
        return cls(
            format=str(data["format"]),
            columns=tuple(
                Column(str(c["name"]), str(c["type"]), bool(c.get("nullable", True)))
                for c in data.get("columns", [])
            ),
            rows=None if data.get("rows") is None else int(data["rows"]),
            error=None if data.get("error") is None else str(data["error"]),
        )


def read_schema(path: Path) -> FileSchema | None:
    """Returns the schema of ``path`` if it is a CSV or Parquet file by its suffix, else
    None. A file pyarrow cannot read gets a schema whose ``error`` says why."""
    kind = TABULAR_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        return None
    import pyarrow as pa

    try:
        if kind == "csv":
            return _csv_schema(path)
        return _parquet_schema(path)
    except (pa.ArrowException, OSError) as exc:
        return FileSchema(format=kind, error=" ".join(str(exc).splitlines()))


def _columns(schema: Any) -> tuple[Column, ...]:
    return tuple(Column(f.name, str(f.type), bool(f.nullable)) for f in schema)


def _csv_schema(path: Path) -> FileSchema:
    from pyarrow import csv

    options = csv.ReadOptions(block_size=CSV_SAMPLE_BYTES)
    with csv.open_csv(path, read_options=options) as reader:
        return FileSchema(format="csv", columns=_columns(reader.schema))


def _parquet_schema(path: Path) -> FileSchema:
    from pyarrow import parquet

    metadata = parquet.read_metadata(path)
    return FileSchema(
        format="parquet",
        columns=_columns(metadata.schema.to_arrow_schema()),
        rows=int(metadata.num_rows),
    )
