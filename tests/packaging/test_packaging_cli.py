"""``aios model package`` and ``aios model export`` against a real control plane with
a registered model: the directories they write, and one line with exit code 2 for
every user mistake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from aios.cli.main import options, reports_invalid_input
from aios.cli.packaging import export, package
from tests.control.control_harness import Running, start_plane, stop_plane


def packaging_app() -> typer.Typer:
    """``aios`` with the two commands under ``model``, registered as cli/main.py
    registers every command (through reports_invalid_input)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    app.callback()(options)
    model_app = typer.Typer(name="model")
    model_app.command("package")(reports_invalid_input(package))
    model_app.command("export")(reports_invalid_input(export))
    app.add_typer(model_app)
    return app


@pytest.fixture(scope="module")
def plane(
    tmp_path_factory: pytest.TempPathFactory,
    sklearn_file: Path,
    python_dir: Path,
) -> Iterator[Running]:
    running = start_plane(tmp_path_factory.mktemp("home"))
    try:
        running.admin.register_model("iris", sklearn_file, "sklearn")
        running.admin.register_model("iris", sklearn_file, "sklearn", alias="production")
        running.admin.register_model("doubler", python_dir, "python")
        yield running
    finally:
        stop_plane(running)


def aios(plane: Running, *args: str | Path) -> Result:
    token = (plane.home / "admin.token").read_text().strip()
    runner = CliRunner(env={"AIOS_URL": plane.url, "AIOS_TOKEN": token, "COLUMNS": "200"})
    return runner.invoke(packaging_app(), [str(arg) for arg in args])


def error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_package_writes_docker_context_and_manifests(plane: Running, tmp_path: Path) -> None:
    result = aios(
        plane,
        "model", "package", "iris@production",
        "--docker", tmp_path / "image",
        "--kubernetes", tmp_path / "k8s",
        "--replicas", "2", "--cpus", "500m", "--mem", "1G", "--gpus", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"docker build -t aios-iris:2 {tmp_path / 'image'}" in result.stdout
    dockerfile = (tmp_path / "image" / "Dockerfile").read_text()
    assert '"iris:2=sklearn:model/iris.joblib"' in dockerfile
    deployment = yaml.safe_load((tmp_path / "k8s" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "aios-iris:2"
    assert container["resources"]["limits"] == {
        "cpu": "500m",
        "memory": "1024Mi",
        "nvidia.com/gpu": "1",
    }
    assert deployment["spec"]["replicas"] == 2


def test_export_writes_the_bundle_and_prints_the_report(plane: Running, tmp_path: Path) -> None:
    result = aios(plane, "model", "export", "iris@1", "--edge", tmp_path / "edge", "--runs", "3")
    assert result.exit_code == 0, result.output
    assert "| onnx fp32 (written) |" in result.stdout
    report = json.loads((tmp_path / "edge" / "report.json").read_text())
    assert report["model"] == "iris@1"
    assert (tmp_path / "edge" / "runner.py").is_file()


def test_export_measures_on_a_given_sample(
    plane: Running, tmp_path: Path, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    """A float64 .npy sample is cast to the model's FP32 and measured on."""
    np.save(tmp_path / "rows.npy", iris[0][:7].astype(np.float64))
    result = aios(
        plane, "model", "export", "iris", "--edge", tmp_path / "edge",
        "--sample", tmp_path / "rows.npy", "--int8", "--runs", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "edge" / "report.json").read_text())
    assert report["sample_shapes"] == {"input": [7, 4]}
    assert report["exported"] == "onnx int8"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("model", "export", "nosuch@1", "--edge", "{dir}"), "nosuch"),
        (("model", "export", "iris@9", "--edge", "{dir}"), "9"),
        (("model", "package", "iris@1"), "--docker DIR, --kubernetes DIR, or both"),
        (("model", "package", "iris@@1", "--docker", "{dir}"), "after '@'"),
        (
            ("model", "export", "doubler", "--edge", "{dir}"),
            "doubler@1 is a python model, which cannot be exported to ONNX",
        ),
        (("model", "package", "iris", "--kubernetes", "{dir}", "--cpus", "x"), "cpu"),
        (("model", "package", "iris", "--kubernetes", "{dir}", "--replicas", "0"), "--replicas"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    plane: Running, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    destination = tmp_path / "out"
    result = aios(plane, *(arg.format(dir=destination) for arg in args))
    line = error_line(result)
    assert line.startswith("aios: error: ") and message in line
    assert not destination.exists()


def test_non_empty_directory_is_refused_unless_forced(plane: Running, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    line = error_line(aios(plane, "model", "export", "iris", "--edge", tmp_path))
    assert "is not empty (use --force" in line
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    result = aios(plane, "model", "export", "iris", "--edge", tmp_path, "--force", "--runs", "1")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "mine.txt").exists()


def test_sample_that_does_not_fit_is_refused(plane: Running, tmp_path: Path) -> None:
    np.save(tmp_path / "labels.npy", np.array(["a", "b"]))
    line = error_line(
        aios(plane, "model", "export", "iris", "--edge", tmp_path / "e", "--sample",
             tmp_path / "labels.npy")
    )  # fmt: skip
    assert "'input' is <U1, the model takes FP32" in line
