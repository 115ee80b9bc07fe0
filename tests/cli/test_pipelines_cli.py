"""``aios run pipeline.yaml`` against a real control plane on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.cli_harness import Cluster, one_error_line, row_of

TWO_STEPS = """\
name: {name}
steps:
  prepare: {{command: [sh, -c, "{prepare}"]}}
  train: {{command: "echo trained", needs: [prepare]}}
"""


def pipeline_file(tmp_path: Path, name: str, prepare: str = "echo prepared") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TWO_STEPS.format(name=name, prepare=prepare))
    return path


def test_run_follows_the_pipeline_and_exits_0_when_every_step_succeeded(
    cluster: Cluster, tmp_path: Path
) -> None:
    result = cluster.aios("run", pipeline_file(tmp_path, "ok"))

    assert result.exit_code == 0, result.stderr
    assert "pipeline" in result.stdout and "ok: succeeded" in result.stdout
    prepare, train = row_of(result.stdout, "prepare"), row_of(result.stdout, "train")
    assert (prepare[2], train[2]) == ("succeeded", "succeeded")
    assert cluster.aios("logs", train[1]).stdout == "trained\n"
    assert cluster.admin.get(int(train[1])).after == [int(prepare[1])]


def test_run_exits_1_when_a_step_fails_and_its_dependents_never_run(
    cluster: Cluster, tmp_path: Path
) -> None:
    result = cluster.aios("run", pipeline_file(tmp_path, "bad", prepare="exit 3"))

    assert result.exit_code == 1
    assert "bad: failed" in result.stdout
    prepare, train = row_of(result.stdout, "prepare"), row_of(result.stdout, "train")
    assert (prepare[2], prepare[5]) == ("failed", "3")
    assert train[2] == "upstream_failed"


def test_run_detach_prints_the_pipeline_id_and_returns(cluster: Cluster, tmp_path: Path) -> None:
    result = cluster.aios("run", "--detach", pipeline_file(tmp_path, "detached"))

    assert result.exit_code == 0, result.stderr
    pipeline = cluster.admin.wait_pipeline(int(result.stdout), timeout=15)
    assert (pipeline.name, pipeline.state) == ("detached", "succeeded")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: loop\nsteps:\n  a: {command: 'true', needs: [b]}\n"
            "  b: {command: 'true', needs: [a]}\n",
            "steps: the needs form a cycle among a, b",
        ),
        ("name: lost\nsteps:\n  a: {command: 'true', needs: [z]}\n", "no step named 'z'"),
        ("name: odd\nsteps:\n  a: {command: 'true', colour: red}\n", "steps.a.colour"),
        ("steps: [", "not valid YAML"),
        (
            "name: big\nsteps:\n  a: {command: 'true', cpus: 999}\n",
            "steps.a: asks for more than any node has",
        ),
    ],
)
def test_a_bad_pipeline_is_one_line_and_exit_2_and_submits_nothing(
    cluster: Cluster, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    before = len(cluster.admin.pipelines())

    result = cluster.aios("run", path)

    assert result.exit_code == 2
    assert message in one_error_line(result)
    assert len(cluster.admin.pipelines()) == before


def test_run_of_a_missing_file_is_one_line_and_exit_2(cluster: Cluster, tmp_path: Path) -> None:
    result = cluster.aios("run", tmp_path / "absent.yaml")

    assert result.exit_code == 2
    assert "No such file" in one_error_line(result)
