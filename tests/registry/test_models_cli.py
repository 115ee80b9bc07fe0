"""``aios model …`` against a real control plane: what it prints, and one-line errors
with exit code 2 for every user mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aios.cli.main import app
from tests.cli.cli_harness import PLAIN, one_error_line, row_of
from tests.control.control_harness import Running
from tests.registry.artifacts import write_onnx, write_sklearn


def aios(plane: Running, *args: str | Path) -> Result:
    token = str(plane.home / "admin.token")
    runner = CliRunner(env={**PLAIN, "AIOS_URL": None, "AIOS_TOKEN": None})
    return runner.invoke(app, ["--url", plane.url, "--token-file", token, *map(str, args)])


def test_register_prints_the_reference_and_show_prints_signature_and_lineage(
    plane: Running, tmp_path: Path
) -> None:
    job = plane.admin.submit(["true"], memory="64M")
    plane.admin.wait(job.id, timeout=30)
    model = write_onnx(tmp_path / "net.onnx", features=6, outputs=2)

    registered = aios(
        plane, "model", "register", "net", model, "--format", "onnx",
        "--metric", "accuracy=0.93", "--tag", "team=vision", "--from-job", str(job.id),
        "--dataset", "digits@2", "--alias", "production", "--description", "first try",
    )  # fmt: skip

    assert registered.exit_code == 0, registered.stderr
    assert registered.stdout == "net@1\n"
    shown = aios(plane, "model", "show", "net@production")
    assert shown.exit_code == 0, shown.stderr
    assert "model net version 1" in shown.stdout
    for fact in ("accuracy=0.93", "team=vision", rf"from job\s+{job.id}\b", "digits@2"):
        assert re.search(fact, shown.stdout), fact
    assert row_of(shown.stdout, "x") == ["x", "FP32", "[-1, 6]"]
    assert row_of(shown.stdout, "y") == ["y", "FP32", "[-1, 2]"]


def test_ls_versions_alias_tag_download_and_delete(plane: Running, tmp_path: Path) -> None:
    for seed in (1, 2):
        path = write_onnx(tmp_path / f"{seed}.onnx", seed=seed)
        assert aios(plane, "model", "register", "flow", path, "--format", "onnx").exit_code == 0

    assert aios(plane, "model", "alias", "flow@1", "stable").stdout == "flow@stable → version 1\n"
    assert row_of(aios(plane, "model", "ls").stdout, "flow")[:4] == ["flow", "default", "2", "2"]
    assert row_of(aios(plane, "model", "versions", "flow").stdout, "1")[3] == "stable"
    tagged = aios(plane, "model", "tag", "flow@stable", "stage=qa", "--description", "kept")
    assert tagged.stdout == "flow@1: stage=qa\n"
    downloaded = aios(plane, "model", "download", "flow@stable", tmp_path / "copy.onnx")
    assert downloaded.stdout == f"{tmp_path / 'copy.onnx'}\n"
    assert (tmp_path / "copy.onnx").read_bytes() == (tmp_path / "1.onnx").read_bytes()
    assert aios(plane, "model", "unalias", "flow@stable").stdout == "flow@stable removed\n"
    assert aios(plane, "model", "delete", "flow@1").stdout == "flow@1 deleted\n"
    assert [v.version for v in plane.admin.model_versions("flow")] == [2]


def test_to_onnx_from_the_cli(plane: Running, tmp_path: Path) -> None:
    source = write_sklearn(tmp_path / "clf.pkl")

    result = aios(plane, "model", "register", "clf", source, "--format", "sklearn", "--to-onnx")

    assert result.exit_code == 0, result.stderr
    shown = aios(plane, "model", "show", "clf")
    assert re.search(r"converted\s+from sklearn \(skl2onnx [0-9.]+\), max difference", shown.stdout)
    assert "clf.onnx" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["register", "m", "{missing}", "--format", "onnx"], "no such file or directory"),
        (["register", "m", "{garbage}", "--format", "onnx"], "cannot load onnx model bad.onnx: "),
        (["register", "m", "{garbage}", "--format", "keras"], "Invalid value for '--format'"),
        (["register", "m", "{garbage}", "--format", "onnx", "--metric", "acc"], "--metric"),
        (["register", "m", "{garbage}", "--format", "onnx", "--metric", "a=b"], "not a number"),
        (["register", "m", "{garbage}", "--format", "onnx", "--dataset", "x"], "dataset"),
        (["register", "-m", "{garbage}", "--format", "onnx"], "No such option"),
        (["register", "b@d", "{garbage}", "--format", "onnx"], "'b@d' is not a model name"),
        (["show", "nothing"], "no model 'nothing'"),
        (["show", "m@"], "after '@' comes a version number"),
        (["delete", "m@production"], "delete: name a version number"),
        (["unalias", "m@3"], "name an alias"),
        (["tag", "m@1"], "give KEY=VALUE"),
        (["download", "nothing@1", "{tmp}"], "no model 'nothing'"),
    ],
)
def test_a_mistake_is_one_line_on_stderr_and_exit_code_2(
    plane: Running, tmp_path: Path, args: list[str], message: str
) -> None:
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"\x00garbage")
    paths = {"missing": tmp_path / "none.onnx", "garbage": garbage, "tmp": tmp_path}

    result = aios(plane, "model", *(arg.format(**paths) for arg in args))

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in one_error_line(result)
    assert result.stdout == ""
