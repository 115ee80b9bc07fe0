from __future__ import annotations

import io
import json
from dataclasses import fields
from pathlib import Path

import pytest
from rich.console import Console

from aios.simulator.metrics import JobOutcome, Metrics, summarize
from aios.simulator.report import comparison_lines, format_table, plot, to_json
from aios.simulator.runner import SimulationResult

HOUR = 3600.0
METRIC_KEYS = [field.name for field in fields(Metrics)]


def result(policy: str, jcts_h: list[float], tenants: list[str] | None = None) -> SimulationResult:
    """A two-GPU-cluster result whose jobs all arrive at 0 and complete after ``jcts_h``."""
    names = tenants or ["a"] * len(jcts_h)
    outcomes = [
        JobOutcome(f"j{i}", tenant, 0.0, HOUR, 1, 0.0, jct * HOUR)
        for i, (jct, tenant) in enumerate(zip(jcts_h, names, strict=True))
    ]
    samples = [(0.0, 2), (max(jcts_h, default=1.0) * HOUR, 0)]
    metrics = summarize(policy, outcomes, samples, gpu_capacity=2)
    return SimulationResult(metrics, outcomes, samples, 2, cycles=7, seconds=0.25)


def render(results: list[SimulationResult]) -> list[str]:
    console = Console(file=io.StringIO(), width=250)
    console.print(format_table(results))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue().splitlines()


def test_format_table_has_one_row_per_result() -> None:
    """The table holds one row per policy, in the order given, plus the policy column."""
    table = format_table([result("fifo", [1.0, 3.0]), result("las", [2.0])])
    assert table.row_count == 2
    assert len(table.columns) == 17
    rows = [line for line in render([result("fifo", [1.0]), result("las", [2.0])]) if "│" in line]
    assert [row.split("│")[1].strip() for row in rows] == ["fifo", "las"]


def test_format_table_shows_hours_days_and_percent() -> None:
    """JCTs are shown in hours with two decimals, makespan in days, utilization in percent."""
    (row,) = [line for line in render([result("fifo", [2.0, 4.0, 48.0])]) if "│ fifo" in line]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:5] == ["fifo", "3", "3", "0", "18.00"]
    assert cells[5] == "4.00"  # median JCT (h)
    assert cells[9] == "2.00"  # makespan: 48 h
    assert cells[10] == "100.0"  # both GPUs busy until the last finish
    assert cells[11] == "1.000"  # one tenant
    assert cells[13:15] == ["0", "0.0"]  # nothing lost to preemption
    assert cells[15] == ""  # no bound ran
    assert cells[16] == "0.2"  # replay seconds


def test_to_json_has_one_object_per_policy_with_the_metric_names() -> None:
    """The JSON lists one object per policy with the Metrics fields, replay_seconds, cycles."""
    rows = json.loads(to_json([result("fifo", [1.0]), result("drf", [2.0])]))
    assert [row["policy"] for row in rows] == ["fifo", "drf"]
    for row in rows:
        assert list(row) == [*METRIC_KEYS, "replay_seconds", "cycles", "jct_vs_bound"]
        assert row["jct_vs_bound"] is None
        assert row["cycles"] == 7
    assert rows[1]["mean_jct"] == pytest.approx(2 * HOUR)


def test_comparison_lines_compare_las_and_drf_with_fifo() -> None:
    """With fifo, las and drf present both comparison lines appear, with their figures."""
    lines = comparison_lines(
        [
            result("fifo", [10.0, 10.0], ["a", "b"]),
            result("las", [4.0, 4.0]),
            result("drf", [5.0, 5.0], ["a", "b"]),
        ]
    )
    assert lines == [
        "mean JCT las vs fifo: 2.50× better",
        "Jain's index drf vs fifo: 1.000 vs 1.000",
    ]


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        (["las", "drf"], 0),
        (["fifo"], 0),
        (["fifo", "las"], 1),
        (["fifo", "drf"], 1),
        (["fifo+backfill", "las"], 0),
    ],
)
def test_comparison_lines_need_fifo_and_the_other_policy(
    policies: list[str], expected: int
) -> None:
    """A comparison line appears only when fifo and the policy it compares both ran."""
    assert len(comparison_lines([result(name, [1.0]) for name in policies])) == expected


def test_comparison_lines_skip_a_ratio_over_zero() -> None:
    """When las completed nothing its mean JCT is 0 and no ratio is printed."""
    empty = result("las", [])
    assert comparison_lines([result("fifo", [1.0]), empty]) == []


def test_plot_writes_a_png(tmp_path: Path) -> None:
    """The plot is a non-empty PNG file, even when one policy completed no job."""
    path = tmp_path / "replay.png"
    plot([result("fifo", [0.0, 1.0, 5.0]), result("las", [])], path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


def test_plot_into_a_missing_directory_raises_oserror(tmp_path: Path) -> None:
    """A path that cannot be written raises OSError for the caller to report."""
    with pytest.raises(OSError):
        plot([result("fifo", [1.0])], tmp_path / "missing" / "replay.png")


def test_every_policy_is_shown_as_a_multiple_of_the_bound() -> None:
    """With oracle-srtf among the results, the table, the JSON and the comparison lines
    give each policy's mean JCT over the bound's."""
    results = [result("fifo", [6.0]), result("oracle-srtf", [2.0]), result("las", [3.0])]
    rows = {row["policy"]: row for row in json.loads(to_json(results))}
    assert rows["fifo"]["jct_vs_bound"] == pytest.approx(3.0)
    assert rows["oracle-srtf"]["jct_vs_bound"] == pytest.approx(1.0)
    table = {line.split("│")[1].strip(): line for line in render(results) if "│" in line}
    assert "3.00×" in table["fifo"] and "1.50×" in table["las"]
    assert (
        comparison_lines(results)[-1]
        == "mean JCT vs the bound (oracle-srtf): fifo 3.00×, las 1.50×"
    )
