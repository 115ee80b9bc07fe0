"""Loading cluster traces (the bundled Philly trace, or any CSV) into :class:`TraceJob` lists.

A trace is a CSV file with a header row. A :class:`ColumnMapping` says which columns hold
the submit time, the duration and, optionally, the GPUs, cores, memory and tenant of each
job. Every problem with the file becomes one :class:`~aios.errors.TraceError` line that
names the file and, where there is one, the 1-based data row and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aios.errors import InvalidInput, InvalidQuantity, TraceError
from aios.resources.quantity import parse_memory

__all__ = [
    "DEFAULT_TENANT",
    "PHILLY_MAPPING",
    "ColumnMapping",
    "TraceJob",
    "bundled_trace_path",
    "load_csv",
    "load_philly",
    "load_trace",
    "parse_mapping",
]

DEFAULT_TENANT = "default"
"""The tenant of a job whose trace has no tenant column, or an empty cell in it."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace, as submitted.

    ``id`` is ``"row-<N>"`` with ``N`` the 1-based data row of the file (the header is not
    counted; blank lines are, so row ``N`` is line ``N + 1`` of a file without multi-line
    quoted fields). ``submit`` is in seconds after the earliest submission of the file,
    so the earliest job is at ``0.0``. ``duration >= 0`` is the seconds the job ran and
    ``gpus >= 0`` the GPUs it asked for. ``cpus`` (cores) and ``memory`` (bytes) are
    ``None`` when the trace has no such column; ``tenant`` is the queue, virtual cluster or
    user group, ``"default"`` when the trace has none. ``name`` is the job's name or
    command, what makes jobs alike beside tenant and size (``""`` when unknown);
    ``restore`` and ``checkpoint_every`` are the job's own preemption cost in seconds
    (see :class:`~aios.scheduler.PreemptionCost`), ``None`` where the trace says nothing
    and the replay's defaults apply.
    """

    id: str
    submit: float
    duration: float
    gpus: int
    cpus: float | None
    memory: int | None
    tenant: str
    name: str = ""
    restore: float | None = None
    checkpoint_every: float | None = None


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which header column of a CSV trace holds each field of :class:`TraceJob`.

    ``submit`` and ``duration`` are required; a field whose column is ``None`` takes its
    default (``gpus`` 0, ``cpus``, ``memory``, ``restore`` and ``checkpoint`` ``None``,
    ``tenant`` ``"default"``, ``name`` ``""``). ``restore`` and ``checkpoint`` are seconds.
    """

    submit: str
    duration: str
    gpus: str | None = None
    cpus: str | None = None
    memory: str | None = None
    tenant: str | None = None
    name: str | None = None
    restore: str | None = None
    checkpoint: str | None = None


PHILLY_MAPPING = ColumnMapping(
    submit="timestamp", duration="duration", gpus="num_gpus", tenant="cluster"
)
"""The columns of the Philly trace: ``timestamp,duration,num_gpus,gpu_time,cluster``."""

_MAPPING_KEYS = (
    "submit",
    "duration",
    "gpus",
    "cpus",
    "memory",
    "tenant",
    "name",
    "restore",
    "checkpoint",
)


def parse_mapping(text: str) -> ColumnMapping:
    """Parses ``"submit=COL,duration=COL[,gpus=COL][,cpus=COL][,memory=COL][,tenant=COL]"``
    (also ``name=``, ``restore=`` and ``checkpoint=``).

    Whitespace around keys and column names is ignored. Raises InvalidInput naming the
    entry at fault for an entry without ``=``, an unknown or repeated key, an empty column
    name, or a missing ``submit`` or ``duration``.
    """
    columns: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        key, sep, column = entry.partition("=")
        key, column = key.strip(), column.strip()
        if not sep:
            raise InvalidInput(f"column mapping entry {entry.strip()!r} has no '=' (try gpus=COL)")
        if key not in _MAPPING_KEYS:
            raise InvalidInput(
                f"unknown column mapping key {key!r} (keys: {', '.join(_MAPPING_KEYS)})"
            )
        if key in columns:
            raise InvalidInput(f"column mapping key {key!r} given twice")
        if not column:
            raise InvalidInput(f"column mapping key {key!r} names no column")
        columns[key] = column
    missing = [key for key in ("submit", "duration") if key not in columns]
    if missing:
        raise InvalidInput(f"column mapping needs {' and '.join(missing)} (got {text!r})")
    return ColumnMapping(
        submit=columns["submit"],
        duration=columns["duration"],
        gpus=columns.get("gpus"),
        cpus=columns.get("cpus"),
        memory=columns.get("memory"),
        tenant=columns.get("tenant"),
        name=columns.get("name"),
        restore=columns.get("restore"),
        checkpoint=columns.get("checkpoint"),
    )


def bundled_trace_path() -> Path:
    """Returns the path of the Philly trace shipped with the package (see data/README.md)."""
    return Path(__file__).parent / "data" / "philly.csv"


def load_trace(
    path: str | Path,
    fmt: str = "philly",
    mapping: ColumnMapping | None = None,
    limit: int | None = None,
) -> list[TraceJob]:
    """Loads ``path`` as format ``fmt``: ``"philly"`` (no mapping) or ``"csv"`` (needs one).

    Raises InvalidInput for an unknown format, a ``"csv"`` load without a mapping or a
    ``"philly"`` load with one; otherwise behaves as :func:`load_philly` or :func:`load_csv`.
    """
    if fmt == "philly":
        if mapping is not None:
            raise InvalidInput("a column mapping applies only to trace format 'csv'")
        return load_philly(path, limit=limit)
    if fmt == "csv":
        if mapping is None:
            raise InvalidInput(
                "trace format 'csv' needs a column mapping such as 'submit=COL,duration=COL'"
            )
        return load_csv(path, mapping, limit=limit)
    raise InvalidInput(f"unknown trace format {fmt!r} (formats: philly, csv)")


def load_philly(path: str | Path, limit: int | None = None) -> list[TraceJob]:
    """Loads a trace in the Philly format; :func:`load_csv` with :data:`PHILLY_MAPPING`."""
    return load_csv(path, PHILLY_MAPPING, limit=limit)


def load_csv(path: str | Path, mapping: ColumnMapping, limit: int | None = None) -> list[TraceJob]:
    """Returns the jobs of the CSV trace at ``path``, read through ``mapping``.

    Jobs are sorted by (submit time, row); ``limit`` keeps the earliest ``limit`` of them
    (``None`` keeps all). Submit times are offsets from the earliest submission in the whole
    file. A submit value is read as seconds if it is a number, else as an ISO-8601 date or
    datetime (naive ones are UTC). Durations and cores are non-negative numbers, GPUs a
    non-negative integer; memory is bytes when a number, else a quantity such as ``"4G"``.
    An empty tenant cell is ``"default"``; blank lines are skipped.

    Raises TraceError for a missing or unreadable file, a file without a header, a mapped
    column absent from the header, a row with too few fields, and a value that cannot be
    parsed or is negative; raises InvalidInput for a negative ``limit``.
    """
    if limit is not None and limit < 0:
        raise InvalidInput(f"trace limit must not be negative, got {limit}")
    source = Path(path)
    try:
        with source.open(newline="", encoding="utf-8-sig") as stream:
            raw = _read_rows(source, stream, mapping)
    except FileNotFoundError:
        raise TraceError(f"trace file not found: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read trace file {source}: {exc}") from None
    # (submit, row) is unique per job, so plain tuple order is (submit, row) order.
    raw.sort()
    if limit is not None:
        del raw[limit:]
    if not raw:
        return []
    origin = raw[0][0]
    return [
        TraceJob(
            f"row-{row}",
            submit - origin,
            duration,
            gpus,
            cpus,
            memory,
            tenant,
            name,
            restore,
            every,
        )
        for submit, row, duration, gpus, cpus, memory, tenant, name, restore, every in raw
    ]


_NAIVE_EPOCH = datetime(1970, 1, 1)

_RawJob = tuple[
    float, int, float, int, float | None, int | None, str, str, float | None, float | None
]


class _BadValue(Exception):
    """A cell that cannot be read; the loader adds the file, row and column."""


def _read_rows(source: Path, stream: Iterable[str], mapping: ColumnMapping) -> list[_RawJob]:
    """Reads every data row of ``stream`` into an unsorted list of raw jobs."""
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise TraceError(f"{source}: header: {exc}") from None
    if header is None or not any(name.strip() for name in header):
        raise TraceError(f"{source}: empty trace file, expected a header row")
    names = [name.strip() for name in header]

    def index_of(column: str) -> int:
        if column not in names:
            raise TraceError(f"{source}: no column {column!r} (columns: {', '.join(names)})")
        return names.index(column)

    def optional_index_of(column: str | None) -> int | None:
        return None if column is None else index_of(column)

    submit_i = index_of(mapping.submit)
    duration_i = index_of(mapping.duration)
    gpus_i = optional_index_of(mapping.gpus)
    cpus_i = optional_index_of(mapping.cpus)
    memory_i = optional_index_of(mapping.memory)
    tenant_i = optional_index_of(mapping.tenant)
    name_i = optional_index_of(mapping.name)
    restore_i = optional_index_of(mapping.restore)
    checkpoint_i = optional_index_of(mapping.checkpoint)
    indices = (submit_i, duration_i, gpus_i, cpus_i, memory_i, tenant_i, name_i, restore_i)
    used = [i for i in (*indices, checkpoint_i) if i is not None]
    width = max(used) + 1
    last_column = names[width - 1]

    times: dict[str, float] = {}
    jobs: list[_RawJob] = []
    row = 0
    try:
        for row, record in enumerate(reader, start=1):
            if not record:
                continue
            if len(record) < width:
                raise TraceError(
                    f"{source}:row {row}: has {len(record)} fields, needs at least {width} "
                    f"(up to column {last_column!r})"
                )
            column = names[submit_i]
            try:
                text = record[submit_i]
                submit = times.get(text)
                if submit is None:
                    submit = times[text] = _parse_time(text)
                column = names[duration_i]
                duration = _parse_amount(record[duration_i])
                gpus = 0
                if gpus_i is not None:
                    column = names[gpus_i]
                    gpus = _parse_count(record[gpus_i])
                cpus = None
                if cpus_i is not None:
                    column = names[cpus_i]
                    cpus = _parse_amount(record[cpus_i])
                memory = None
                if memory_i is not None:
                    column = names[memory_i]
                    memory = _parse_memory(record[memory_i])
                restore = checkpoint = None
                if restore_i is not None and record[restore_i].strip():
                    column = names[restore_i]
                    restore = _parse_amount(record[restore_i])
                if checkpoint_i is not None and record[checkpoint_i].strip():
                    column = names[checkpoint_i]
                    checkpoint = _parse_amount(record[checkpoint_i])
            except _BadValue as exc:
                raise TraceError(f"{source}:row {row}: column {column!r}: {exc}") from None
            tenant = DEFAULT_TENANT
            if tenant_i is not None:
                tenant = record[tenant_i].strip() or DEFAULT_TENANT
            name = record[name_i].strip() if name_i is not None else ""
            jobs.append(
                (submit, row, duration, gpus, cpus, memory, tenant, name, restore, checkpoint)
            )
    except csv.Error as exc:
        raise TraceError(f"{source}:row {row + 1}: {exc}") from None
    return jobs


def _parse_time(text: str) -> float:
    """Seconds as a number, or the POSIX time of an ISO-8601 date/datetime (naive is UTC)."""
    # "YYYY-…" is tried as a date first: a failing float() costs more than the parse itself.
    if text[4:5] == "-":
        value = _as_posix_time(text)
        if value is None:
            value = _as_number(text)
    else:
        value = _as_number(text)
        if value is None:
            value = _as_posix_time(text)
    if value is None:
        raise _BadValue(f"cannot parse {text!r} as a number or an ISO-8601 date/time")
    if not math.isfinite(value):
        raise _BadValue(f"cannot parse {text!r} as a finite time")
    return value


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _as_posix_time(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        # Subtracting a naive epoch is UTC arithmetic and three times faster than
        # replace(tzinfo=UTC).timestamp().
        return (moment - _NAIVE_EPOCH).total_seconds()
    return moment.timestamp()


def _parse_amount(text: str) -> float:
    """A finite, non-negative float."""
    try:
        value = float(text)
    except ValueError:
        raise _BadValue(f"cannot parse {text!r} as a number") from None
    if not math.isfinite(value):
        raise _BadValue(f"cannot parse {text!r} as a finite number")
    if value < 0:
        raise _BadValue(f"must not be negative, got {text.strip()}")
    return value


def _parse_count(text: str) -> int:
    """A non-negative integer; ``"2.0"`` is accepted as 2."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise _BadValue(f"cannot parse {text!r} as an integer") from None
        if not number.is_integer():
            raise _BadValue(f"cannot parse {text!r} as an integer") from None
        value = int(number)
    if value < 0:
        raise _BadValue(f"must not be negative, got {text.strip()}")
    return value


def _parse_memory(text: str) -> int:
    """Bytes: a plain number is bytes (rounded up), anything else a quantity like ``"4G"``."""
    try:
        number = float(text)
    except ValueError:
        try:
            return parse_memory(text)
        except InvalidQuantity as exc:
            raise _BadValue(str(exc)) from None
    if not math.isfinite(number):
        raise _BadValue(f"cannot parse {text!r} as a finite number of bytes")
    if number < 0:
        raise _BadValue(f"must not be negative, got {text.strip()}")
    return math.ceil(number)
