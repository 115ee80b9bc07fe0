from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aios.errors import InvalidInput, TraceError
from aios.simulator.traces import (
    PHILLY_MAPPING,
    ColumnMapping,
    TraceJob,
    bundled_trace_path,
    load_csv,
    load_philly,
    load_trace,
    parse_mapping,
)

PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


@pytest.fixture(scope="module")
def philly() -> list[TraceJob]:
    """The whole bundled Philly trace, loaded once for the module."""
    return load_philly(bundled_trace_path())


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_philly_loads_every_job(philly: list[TraceJob]) -> None:
    """The bundled trace holds 82,247 jobs from 15 tenants with unique row ids."""
    assert len(philly) == 82_247
    assert len({job.tenant for job in philly}) == 15
    assert len({job.id for job in philly}) == 82_247


def test_bundled_philly_is_sorted_from_zero(philly: list[TraceJob]) -> None:
    """Jobs come back sorted by (submit, row), the first at 0.0 and the last 109 days on."""
    assert philly[0].submit == 0.0
    keys = [(job.submit, int(job.id.removeprefix("row-"))) for job in philly]
    assert keys == sorted(keys)
    first = datetime(2017, 9, 4, 10, 30, 41)
    last = datetime(2017, 12, 22, 8, 2, 11)
    assert philly[-1].submit == (last - first).total_seconds()


def test_bundled_philly_matches_its_readme(philly: list[TraceJob]) -> None:
    """Total work is 978,078 GPU-hours; the trace has no cpu or memory columns."""
    gpu_hours = sum(job.duration * job.gpus for job in philly) / 3600
    assert round(gpu_hours) == 978_078
    assert all(job.cpus is None and job.memory is None for job in philly)
    assert sum(1 for job in philly if job.gpus == 1) == 76_627


def test_limit_keeps_the_earliest_submissions(philly: list[TraceJob]) -> None:
    """With a limit the loader returns the first K jobs of the fully sorted trace."""
    assert load_philly(bundled_trace_path(), limit=100) == philly[:100]


def test_limit_on_an_unsorted_file(tmp_path: Path) -> None:
    """Limit picks by submit time, not by file order, and ties keep row order."""
    path = write(tmp_path, "t,d\n30,1\n10,1\n20,1\n10,2\n")
    jobs = load_csv(path, ColumnMapping(submit="t", duration="d"), limit=3)
    assert [(job.id, job.submit) for job in jobs] == [
        ("row-2", 0.0),
        ("row-4", 0.0),
        ("row-3", 10.0),
    ]
    assert load_csv(path, ColumnMapping(submit="t", duration="d"), limit=0) == []


def test_negative_limit_is_rejected(tmp_path: Path) -> None:
    """A negative limit is a caller mistake."""
    path = write(tmp_path, "t,d\n1,1\n")
    with pytest.raises(InvalidInput, match="limit"):
        load_csv(path, ColumnMapping(submit="t", duration="d"), limit=-1)


def test_numeric_times_are_seconds(tmp_path: Path) -> None:
    """Numeric submit values are seconds, offset from the earliest one."""
    path = write(tmp_path, "t,d\n100,5\n50.5,2.5\n200,0\n")
    jobs = load_csv(path, ColumnMapping(submit="t", duration="d"))
    assert [(job.id, job.submit, job.duration) for job in jobs] == [
        ("row-2", 0.0, 2.5),
        ("row-1", 49.5, 5.0),
        ("row-3", 149.5, 0.0),
    ]


def test_iso_times_are_utc_and_mix_with_numbers(tmp_path: Path) -> None:
    """ISO dates and datetimes are read per value, naive ones as UTC, alongside epoch seconds."""
    epoch = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    path = write(
        tmp_path,
        "t,d\n"
        "2024-01-01 00:30:00,1\n"
        "2024-01-01T02:00:00+01:00,1\n"
        "2024-01-01,1\n"
        f"{epoch + 60:.0f},1\n"
        "2024-01-01T00:00:10Z,1\n",
    )
    jobs = load_csv(path, ColumnMapping(submit="t", duration="d"))
    assert [(job.id, job.submit) for job in jobs] == [
        ("row-3", 0.0),
        ("row-5", 10.0),
        ("row-4", 60.0),
        ("row-1", 1800.0),
        ("row-2", 3600.0),
    ]


def test_optional_columns_default(tmp_path: Path) -> None:
    """Unmapped gpus, cpus, memory and tenant become 0, None, None and "default"."""
    path = write(tmp_path, "t,d\n0,1\n")
    (job,) = load_csv(path, ColumnMapping(submit="t", duration="d"))
    assert job == TraceJob("row-1", 0.0, 1.0, 0, None, None, "default")


def test_cpu_memory_and_tenant_columns(tmp_path: Path) -> None:
    """Memory is bytes as a number or a quantity string; cpus are float cores."""
    path = write(
        tmp_path,
        "t,d,g,c,mem,q\n0,1,2,2.5,4G,a\n1,1,0,1,1024,\n2,1,1,0.5, 512Mi ,b\n",
    )
    mapping = parse_mapping("submit=t,duration=d,gpus=g,cpus=c,memory=mem,tenant=q")
    jobs = load_csv(path, mapping)
    assert [(job.gpus, job.cpus, job.memory, job.tenant) for job in jobs] == [
        (2, 2.5, 4 * 1024**3, "a"),
        (0, 1.0, 1024, "default"),
        (1, 0.5, 512 * 1024**2, "b"),
    ]


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    """Blank lines yield no job, and row ids still match the file's line positions."""
    path = write(
        tmp_path,
        PHILLY_HEADER + "2017-10-09 07:01:55,66.0,1,66.0,a\n\n2017-10-09 07:01:56,1.0,2,2.0,b\n\n",
    )
    jobs = load_philly(path)
    assert [(job.id, job.gpus, job.tenant) for job in jobs] == [
        ("row-1", 1, "a"),
        ("row-3", 2, "b"),
    ]


def test_load_trace_dispatches_on_format(tmp_path: Path) -> None:
    """load_trace reads "philly" without a mapping and "csv" with one."""
    philly = write(tmp_path, PHILLY_HEADER + "2017-10-09 07:01:55,66.0,4,264.0,a\n")
    assert load_trace(philly) == load_philly(philly)
    assert load_trace(str(philly), "csv", PHILLY_MAPPING) == load_philly(philly)


@pytest.mark.parametrize(
    ("fmt", "mapping", "message"),
    [
        ("csv", None, "needs a column mapping"),
        ("philly", PHILLY_MAPPING, "applies only to trace format 'csv'"),
        ("parquet", None, "unknown trace format 'parquet'"),
    ],
)
def test_load_trace_rejects_bad_format_arguments(
    tmp_path: Path, fmt: str, mapping: ColumnMapping | None, message: str
) -> None:
    """A wrong format, or a mapping given where it does not belong, is InvalidInput."""
    path = write(tmp_path, PHILLY_HEADER)
    with pytest.raises(InvalidInput, match=message):
        load_trace(path, fmt, mapping)


def test_bundled_trace_path_exists() -> None:
    """The bundled trace ships next to the module, with its README."""
    path = bundled_trace_path()
    assert path.is_file()
    assert (path.parent / "README.md").is_file()


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    """A path that does not exist is named in the error."""
    path = tmp_path / "nope.csv"
    with pytest.raises(TraceError, match=re.escape(f"trace file not found: {path}")):
        load_philly(path)


def test_unreadable_path_is_a_trace_error(tmp_path: Path) -> None:
    """A path that cannot be read as a file (here a directory) is named in the error."""
    with pytest.raises(TraceError, match=re.escape(f"cannot read trace file {tmp_path}")):
        load_philly(tmp_path)


def test_unparsable_value_message_is_exact(tmp_path: Path) -> None:
    """The message reads "PATH:row N: column 'C': cannot parse 'V' as a number"."""
    path = write(tmp_path, PHILLY_HEADER + "2017-10-09 07:01:55,abc,1,66.0,a\n")
    with pytest.raises(TraceError) as caught:
        load_philly(path)
    assert str(caught.value) == f"{path}:row 1: column 'duration': cannot parse 'abc' as a number"


BASIC = "submit=t,duration=d"
WITH_GPUS = "submit=t,duration=d,gpus=g"


@pytest.mark.parametrize(
    ("text", "mapping", "message"),
    [
        ("", BASIC, "empty trace file"),
        ("\n\n", BASIC, "empty trace file"),
        ("t,x\n0,1\n", BASIC, "no column 'd' (columns: t, x)"),
        ("t,d\n0,1\n1,abc\n", BASIC, "row 2: column 'd': cannot parse 'abc' as a number"),
        ("t,d\n0,1\n1,-5\n", BASIC, "row 2: column 'd': must not be negative, got -5"),
        ("t,d\n0,nan\n", BASIC, "row 1: column 'd': cannot parse 'nan' as a finite number"),
        ("t,d\nyesterday,1\n", BASIC, "row 1: column 't': cannot parse 'yesterday' as a number"),
        ("t,d\n2024-13-01,1\n", BASIC, "row 1: column 't': cannot parse '2024-13-01'"),
        ("t,d,g\n0,1,1\n0,1,-2\n", WITH_GPUS, "row 2: column 'g': must not be negative, got -2"),
        ("t,d,g\n0,1,1.5\n", WITH_GPUS, "row 1: column 'g': cannot parse '1.5' as an integer"),
        (
            "t,d,g\n0,1,1\n\n0,1\n",
            WITH_GPUS,
            "row 3: has 2 fields, needs at least 3 (up to column 'g')",
        ),
        (
            "t,d,m\n0,1,4X\n",
            BASIC + ",memory=m",
            "row 1: column 'm': cannot parse memory quantity '4X'",
        ),
        ("t,d,m\n0,1,-4\n", BASIC + ",memory=m", "row 1: column 'm': must not be negative, got -4"),
        (
            "t,d,c\n0,1,two\n",
            BASIC + ",cpus=c",
            "row 1: column 'c': cannot parse 'two' as a number",
        ),
    ],
)
def test_malformed_trace_names_file_row_and_column(
    tmp_path: Path, text: str, mapping: str, message: str
) -> None:
    """Each kind of malformed trace is one TraceError line naming the file and the fault."""
    path = write(tmp_path, text)
    with pytest.raises(TraceError) as caught:
        load_csv(path, parse_mapping(mapping))
    error = str(caught.value)
    assert error.startswith(str(path))
    assert message in error
    assert "\n" not in error


def test_gpus_written_as_whole_floats_are_accepted(tmp_path: Path) -> None:
    """A GPU count of "2.0" is read as 2."""
    path = write(tmp_path, "t,d,g\n0,1,2.0\n")
    (job,) = load_csv(path, ColumnMapping(submit="t", duration="d", gpus="g"))
    assert job.gpus == 2


def test_parse_mapping_reads_every_key() -> None:
    """All six keys are read, whitespace is ignored, and unmapped keys stay None."""
    assert parse_mapping(" submit = a , duration=b,gpus=c,cpus=d,memory=e,tenant=f ") == (
        ColumnMapping("a", "b", "c", "d", "e", "f")
    )
    assert parse_mapping("duration=b,submit=a,") == ColumnMapping("a", "b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("submit=a,duration=b,queue=c", "unknown column mapping key 'queue'"),
        ("submit=a,duration", "entry 'duration' has no '='"),
        ("submit=a", "needs duration"),
        ("", "needs submit and duration"),
        ("submit=a,duration=b,submit=c", "key 'submit' given twice"),
        ("submit=a,duration=", "key 'duration' names no column"),
    ],
)
def test_parse_mapping_rejects_malformed_text(text: str, message: str) -> None:
    """A malformed mapping is InvalidInput naming the entry at fault."""
    with pytest.raises(InvalidInput, match=message):
        parse_mapping(text)
