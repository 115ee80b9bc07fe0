"""``--docker``: the build context has what the image needs, its Dockerfile says what
the image does, and its CMD serves the model when run here as a process."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from aios.cli.main import app
from aios.errors import InvalidInput
from aios.packaging import DockerContext, ModelArtifact, write_docker_context
from tests.packaging.dockerfile import Instruction, parse_dockerfile

DEADLINE = 60.0
"""Seconds a server started here gets to report ready (imports, loading the model)."""


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory, sklearn_file: Path) -> DockerContext:
    model = ModelArtifact("iris", 3, "sklearn", sklearn_file)
    return write_docker_context(model, tmp_path_factory.mktemp("docker") / "context")


def instructions(context: DockerContext) -> list[Instruction]:
    return parse_dockerfile(context.dockerfile.read_text())


def only(context: DockerContext, keyword: str) -> Instruction:
    found = [i for i in instructions(context) if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def test_context_holds_dockerfile_model_requirements_and_wheel(
    context: DockerContext, sklearn_file: Path
) -> None:
    """The context is self-contained: the model's bytes, pinned requirements, a wheel."""
    names = sorted(
        p.relative_to(context.directory).as_posix() for p in context.directory.rglob("*")
    )
    assert names == sorted(
        [
            ".dockerignore",
            "Dockerfile",
            "model",
            "model/iris.joblib",
            "requirements.txt",
            context.wheel.name,
        ]
    )
    assert context.artifact.read_bytes() == sklearn_file.read_bytes()


def test_dockerfile_builds_on_slim_python_and_runs_as_non_root(context: DockerContext) -> None:
    """FROM python:3.11-slim, and a numeric non-root USER set after the installs."""
    steps = instructions(context)
    keywords = [step.keyword for step in steps]
    assert steps[0] == Instruction("FROM", "python:3.11-slim")
    user = only(context, "USER").arguments
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    last_run = max(i for i, keyword in enumerate(keywords) if keyword == "RUN")
    assert keywords.index("USER") > last_run
    assert only(context, "WORKDIR").arguments == "/app"


def test_dockerfile_copies_only_files_of_the_context(context: DockerContext) -> None:
    """Every COPY source exists in the context, so ``docker build`` needs nothing else."""
    for step in instructions(context):
        if step.keyword == "COPY":
            *sources, _destination = step.arguments.split()
            for source in sources:
                assert (context.directory / source).exists(), source


def test_dockerfile_installs_pinned_requirements_and_the_wheel(context: DockerContext) -> None:
    run = " ".join(i.arguments for i in instructions(context) if i.keyword == "RUN")
    assert "pip install --no-cache-dir -r requirements.txt" in run
    assert f"./{context.wheel.name}" in run


def test_dockerfile_exposes_the_port_and_checks_readiness(context: DockerContext) -> None:
    """EXPOSE 8080, and a HEALTHCHECK that asks /v2/health/ready on that port."""
    assert only(context, "EXPOSE").arguments == "8080"
    healthcheck = only(context, "HEALTHCHECK").arguments
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options
    probe = Instruction("CMD", command).exec_form()
    assert probe[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/v2/health/ready" in probe[2]


def test_cmd_serves_the_model_with_aios_serve(context: DockerContext) -> None:
    cmd = only(context, "CMD").exec_form()
    assert cmd == list(context.command)
    assert cmd == [
        "aios",
        "serve",
        "--model",
        "iris:3=sklearn:model/iris.joblib",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]


def test_requirements_pin_the_installed_versions(context: DockerContext) -> None:
    """Each line is ``name==version`` at the version installed here."""
    lines = [
        line for line in context.requirements.read_text().splitlines() if not line.startswith("#")
    ]
    pins = dict(line.split("==") for line in lines)
    assert {"fastapi", "uvicorn", "numpy", "onnxruntime", "scikit-learn"} <= set(pins)
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name


def test_wheel_installs_offline_with_the_console_script(
    context: DockerContext, tmp_path: Path
) -> None:
    """pip installs the wheel with no index: the aios package, its data, ``bin/aios``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(tmp_path),
            str(context.wheel),
        ],
        check=True,
    )
    assert (tmp_path / "aios" / "cli" / "main.py").is_file()
    assert (tmp_path / "aios" / "packaging" / "runner.py").is_file()
    assert (tmp_path / "aios" / "simulator" / "data" / "philly.csv").is_file()
    assert "from aios.cli.main import app" in (tmp_path / "bin" / "aios").read_text()
    with zipfile.ZipFile(context.wheel) as archive:
        assert not [name for name in archive.namelist() if "__pycache__" in name]


def test_a_python_model_directory_is_copied_whole(
    tmp_path: Path, python_model: ModelArtifact
) -> None:
    """A ``python`` artifact is a directory: the context holds all of it, CMD names it."""
    context = write_docker_context(python_model, tmp_path / "context")
    assert (context.artifact / "model.py").read_text() == (
        python_model.path / "model.py"
    ).read_text()
    assert "doubler:2=python:model/doubler" in context.command
    names = {line.split("==")[0] for line in context.requirements.read_text().splitlines()}
    assert "scikit-learn" not in names


def test_existing_non_empty_directory_is_refused_unless_forced(
    tmp_path: Path, sklearn_model: ModelArtifact
) -> None:
    """Nothing is written over a directory that holds something, unless force."""
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        write_docker_context(sklearn_model, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    write_docker_context(sklearn_model, tmp_path, force=True)
    assert not (tmp_path / "keep.txt").exists()
    assert (tmp_path / "Dockerfile").is_file()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cmd_program_is_a_command_of_the_aios_script(context: DockerContext) -> None:
    """The image runs ``aios serve``: the console script the wheel installs has it."""
    program, command = only(context, "CMD").exec_form()[:2]
    result = CliRunner().invoke(app, [command, "--help"])
    assert program == "aios"
    assert result.exit_code == 0, result.output
    assert "--model" in result.output


@pytest.fixture
def served(context: DockerContext) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The context's CMD run from the context directory (the image's WORKDIR), on
    loopback and a free port instead of 0.0.0.0:8080. ``python -m aios.serving`` stands
    for ``aios serve`` (same arguments, same code) so that this test does not depend on
    which ``aios`` script is first on the PATH."""
    port = free_port()
    cmd = only(context, "CMD").exec_form()
    cmd[:2] = [sys.executable, "-m", "aios.serving"]
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = str(port)
    process = subprocess.Popen(cmd, cwd=context.directory, start_new_session=True)
    try:
        yield port, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=DEADLINE)


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # the server reports ready by answering; nothing to wait on
    pytest.fail("the server did not become ready")


@pytest.mark.slow
def test_cmd_runs_a_server_that_answers_inference(
    context: DockerContext,
    served: tuple[int, subprocess.Popen[bytes]],
    iris: tuple[np.ndarray, np.ndarray],
    iris_pipeline: Pipeline,
) -> None:
    """The CMD's ``aios serve`` arguments serve the packaged model over V2, and the
    HEALTHCHECK's probe passes against it."""
    port, process = served
    wait_ready(port, process)
    features = iris[0][:5]
    response = httpx.post(
        f"http://127.0.0.1:{port}/v2/models/iris/infer",
        json={
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [5, 4],
                    "data": features.ravel().tolist(),
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert outputs["label"]["data"] == iris_pipeline.predict(features).tolist()
    probe = Instruction("CMD", only(context, "HEALTHCHECK").arguments.partition("CMD ")[2])
    code = probe.exec_form()[2].replace(":8080/", f":{port}/")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
