from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aios.cli.main import app
from aios.simulator import Metrics

# This Typer's CliRunner keeps stdout and stderr apart (there is no mix_stderr option).
# Variables that would make rich treat the captured streams as a terminal are removed,
# and so is COLUMNS, so the output does not depend on the shell running the tests.
runner = CliRunner(
    env={"COLUMNS": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}
)

METRIC_KEYS = [field.name for field in fields(Metrics)]

PHILLY_ROWS = """\
timestamp,duration,num_gpus,gpu_time,cluster
2017-10-01 00:00:00,3600,1,3600,vc1
2017-10-01 00:05:00,600,2,1200,vc2
2017-10-01 00:10:00,7200,8,57600,vc1
2017-10-01 00:20:00,60,1,60,vc2
2017-10-01 01:00:00,1800,4,7200,vc3
"""

GENERIC_ROWS = """\
job,submitted,runtime_s,gpu,team
a,2024-03-01T08:00:00,600,1,red
b,2024-03-01T09:00:00,600,1,blue
"""

SMALL_CLUSTER = ["--nodes", "1", "--gpus-per-node", "8"]


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def table_rows(stdout: str) -> list[str]:
    """The first cell of every body row of the rich table."""
    return [
        line.split("│")[1].strip()
        for line in stdout.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    ]


def test_table_has_one_row_per_policy(tmp_path: Path) -> None:
    """Each policy given gets exactly one row of the table on stdout, in order, and the
    clairvoyant bound one more, which every policy's mean JCT is compared with."""
    trace = write(tmp_path, PHILLY_ROWS)
    result = invoke("simulate", "--trace", trace, *SMALL_CLUSTER, "--policy", "fifo,las,drf")
    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout) == ["fifo", "las", "drf", "oracle-srtf"]
    assert "mean JCT las vs fifo:" in result.stdout
    assert "Jain's index drf vs fifo:" in result.stdout
    assert "mean JCT vs the bound (oracle-srtf): fifo " in result.stdout


def test_progress_goes_to_stderr_one_line_per_policy(tmp_path: Path) -> None:
    """Without a terminal, stderr gets one 'replayed' line per policy and stdout none."""
    trace = write(tmp_path, PHILLY_ROWS)
    result = invoke(
        "simulate", "--trace", trace, *SMALL_CLUSTER, "--policy", "fifo,sjf", "--no-bound"
    )
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["replayed fifo", "replayed sjf"]
    assert all(" 5 jobs in " in line for line in lines)
    assert "replayed" not in result.stdout


def test_json_has_one_object_per_policy_with_the_metric_keys(tmp_path: Path) -> None:
    """--json prints only JSON on stdout: one object per policy with the metric names."""
    trace = write(tmp_path, PHILLY_ROWS)
    result = invoke(
        "simulate", "--trace", trace, *SMALL_CLUSTER, "--policy", "fifo, fifo+backfill", "--json"
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["policy"] for row in rows] == ["fifo", "fifo+backfill", "oracle-srtf"]
    for row in rows:
        assert list(row) == [*METRIC_KEYS, "replay_seconds", "cycles", "jct_vs_bound"]
        assert row["jobs"] == 5
        assert row["completed"] == 5


def test_plot_writes_a_non_empty_png(tmp_path: Path) -> None:
    """--plot writes a PNG file with the figure."""
    trace = write(tmp_path, PHILLY_ROWS)
    png = tmp_path / "replay.png"
    result = invoke("simulate", "--trace", trace, *SMALL_CLUSTER, "--policy", "fifo", "--plot", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(b"\x89PNG")
    assert png.stat().st_size > 1000


def test_generic_csv_with_a_column_map_and_iso_times(tmp_path: Path) -> None:
    """A CSV read through --map takes ISO submit times as offsets from the first job."""
    trace = write(tmp_path, GENERIC_ROWS)
    result = invoke(
        "simulate",
        "--trace",
        trace,
        "--format",
        "csv",
        "--map",
        "submit=submitted,duration=runtime_s,gpus=gpu,tenant=team",
        *SMALL_CLUSTER,
        "--policy",
        "fifo",
        "--json",
        "--no-bound",
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["completed"] == 2
    assert row["makespan"] == pytest.approx(3600 + 600)
    assert row["mean_jct"] == pytest.approx(600)


def test_map_alone_implies_the_csv_format(tmp_path: Path) -> None:
    """--map without --format reads the trace as a generic CSV."""
    trace = write(tmp_path, GENERIC_ROWS)
    result = invoke(
        "simulate", "--trace", trace, "--map", "submit=submitted,duration=runtime_s", "--json"
    )
    assert result.exit_code == 0, result.output
    assert {row["jobs"] for row in json.loads(result.stdout)} == {2}


def test_job_larger_than_the_cluster_is_unschedulable(tmp_path: Path) -> None:
    """A 64-GPU job on an 8-GPU cluster is counted as unschedulable and the others run."""
    trace = write(tmp_path, PHILLY_ROWS + "2017-10-01 02:00:00,600,64,38400,vc1\n")
    result = invoke("simulate", "--trace", trace, *SMALL_CLUSTER, "--policy", "fifo,las", "--json")
    assert result.exit_code == 0, result.output
    for row in json.loads(result.stdout):
        assert row["jobs"] == 6
        assert row["unschedulable"] == 1
        assert row["completed"] == 5


@pytest.mark.parametrize(
    ("trace_text", "args", "named"),
    [
        (None, ["--trace", "{tmp}/absent.csv"], ["absent.csv", "not found"]),
        (
            GENERIC_ROWS,
            ["--trace", "{trace}", "--map", "submit=submitted,duration=elapsed"],
            ["trace.csv", "'elapsed'"],
        ),
        (
            PHILLY_ROWS + "2017-10-01 03:00:00,60,two,60,vc1\n",
            ["--trace", "{trace}"],
            ["trace.csv", "row 6", "'num_gpus'", "'two'"],
        ),
        (
            PHILLY_ROWS.replace(",600,2,", ",-600,2,"),
            ["--trace", "{trace}"],
            ["trace.csv", "row 2", "'duration'", "negative"],
        ),
        (PHILLY_ROWS, ["--trace", "{trace}", "--policy", "fifo,bogus"], ["bogus", "--policy"]),
        (PHILLY_ROWS, ["--trace", "{trace}", "--policy", "fifo+turbo"], ["turbo"]),
        (PHILLY_ROWS, ["--trace", "{trace}", "--policy", " , "], ["--policy"]),
        (GENERIC_ROWS, ["--trace", "{trace}", "--format", "csv"], ["--map"]),
        (PHILLY_ROWS, ["--trace", "{trace}", "--format", "philly", "--map", "a=b"], ["--map"]),
        (GENERIC_ROWS, ["--trace", "{trace}", "--map", "submit=submitted"], ["--map", "duration"]),
        (PHILLY_ROWS, ["--trace", "{trace}", "--mem-per-node", "lots"], ["--mem-per-node"]),
        (PHILLY_ROWS, ["--trace", "{trace}", "--plot", "{tmp}/no/such/dir/x.png"], ["--plot"]),
        (PHILLY_ROWS, ["--trace", "{trace}", "--restore", "soon"], ["--restore", "'soon'"]),
        (PHILLY_ROWS, ["--trace", "{trace}", "--checkpoint-every", "-5m"], ["--checkpoint-every"]),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_code_2(
    tmp_path: Path, trace_text: str | None, args: list[str], named: list[str]
) -> None:
    """A user mistake exits 2 with one 'aios: error:' line naming what is wrong, no traceback."""
    trace = tmp_path / "trace.csv"
    if trace_text is not None:
        trace.write_text(trace_text)
    filled = [arg.format(tmp=tmp_path, trace=trace) for arg in args]
    result = invoke("simulate", *filled, *SMALL_CLUSTER)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("aios: error: ")
    for part in named:
        assert part in line
    assert "Traceback" not in result.output


def test_unknown_policy_fails_before_any_replay(tmp_path: Path) -> None:
    """An unknown policy late in the list stops the run before the first policy replays."""
    trace = write(tmp_path, PHILLY_ROWS)
    result = invoke("simulate", "--trace", trace, "--policy", "fifo,las,nope")
    assert result.exit_code == 2
    assert "replayed" not in result.stderr


def test_usage_errors_exit_2() -> None:
    """Typer's own usage errors (a bad --format choice, --nodes 0) also exit 2."""
    assert invoke("simulate", "--format", "parquet").exit_code == 2
    assert invoke("simulate", "--nodes", "0").exit_code == 2


def test_no_arguments_shows_the_commands() -> None:
    """Running aios with no arguments prints help that lists simulate and demo."""
    result = invoke()
    assert "simulate" in result.output
    assert "demo" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-history", "--nodes", "3"], "--nodes does not apply with --from-history"),
        (["--from-history", "--trace", "t.csv"], "--trace does not apply with --from-history"),
        (["--from-history", "--map", "submit=a,duration=b"], "--map does not apply"),
        (["--from-history", "--since", "a week"], "--since: cannot parse duration 'a week'"),
        (["--from-history", "--since", "0s"], "--since must be longer than 0 seconds"),
        (["--since", "7d"], "--since applies only with --from-history"),
    ],
)
def test_history_options_are_checked_before_the_control_plane_is_asked(
    args: list[str], message: str
) -> None:
    """Options that contradict ``--from-history`` (or need it) are refused by name, on
    one line with exit code 2, before any request: no control plane listens here."""
    result = invoke("--url", "http://127.0.0.1:9", "simulate", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.startswith("aios: error: ")


def test_costs_show_in_the_json_and_zero_costs_lose_nothing(tmp_path: Path) -> None:
    """The JSON carries the GPU-seconds lost and the restore seconds; with --restore 0
    and --checkpoint-every 0 a preemption costs nothing."""
    trace = write(tmp_path, PHILLY_ROWS)
    free = invoke(
        "simulate",
        "--trace",
        trace,
        "--policy",
        "las",
        "--json",
        "--restore",
        "0",
        "--checkpoint-every",
        "0",
        "--no-bound",
        *SMALL_CLUSTER,
    )
    assert free.exit_code == 0, free.stderr
    (row,) = json.loads(free.stdout)
    assert row["lost_gpu_seconds"] == 0.0
    assert row["restore_seconds"] == 0.0
