"""``aios serve`` as a replica runs it: a real process (``python -m aios.serving``) on
port 0 that writes its address to the ready file, answers tritonclient, and on SIGTERM
finishes the request it holds before it exits 0; given a secret in its environment, it
answers only requests that carry it and hides it from model code. Bad arguments are one
line, exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from aios.errors import InvalidInput
from aios.serving.command import parse_model
from aios.serving.secret import SECRET_ENV
from tests.serving.conftest import Artifacts
from tests.serving.models import digits, write_env_probe

WAIT = 60.0
"""Seconds a process may take to start or stop before the test fails."""

HOLDING = '''
import os
import time

import numpy as np


class Model:
    """Marks that it has a request, then holds it until the test releases it."""

    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
    }

    def load(self, path):
        self.path = path

    def predict(self, inputs):
        open(os.path.join(self.path, "entered"), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(self.path, "release")):
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.01)
        return {"y": inputs["x"] * 10}
'''


def _await_file(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the server ended: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


@contextmanager
def replica(
    *models: str, ready_file: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    arguments = [arg for model in models for arg in ("--model", model)]
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "aios.serving", *arguments, "--port", "0"),
            *("--ready-file", str(ready_file), "--max-queue-delay-ms", "0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        _await_file(ready_file, process)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_replica_announces_itself_serves_and_drains_on_sigterm(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    holding = tmp_path / "holding"
    holding.mkdir()
    (holding / "model.py").write_text(HOLDING)
    ready_file = tmp_path / "ready.json"
    models = (f"digits:3=onnx:{artifacts.mlp_onnx}", f"holding=python:{holding}")
    with replica(*models, ready_file=ready_file) as process:
        address = json.loads(ready_file.read_text())
        assert address["host"] == "127.0.0.1"
        client = triton.InferenceServerClient(f"127.0.0.1:{address['port']}")
        features = digits()[0][:4]
        tensor = triton.InferInput("X", [4, 64], "FP32")
        tensor.set_data_from_numpy(features)
        labels = client.infer("digits", [tensor]).as_numpy("label")
        np.testing.assert_array_equal(labels, artifacts.mlp.predict(features))
        assert client.get_model_metadata("digits")["versions"] == ["3"]

        held: dict[str, Any] = {}

        def send() -> None:
            other = triton.InferenceServerClient(f"127.0.0.1:{address['port']}")
            tensor = triton.InferInput("x", [2], "FP32")
            tensor.set_data_from_numpy(np.array([1.0, 2.0], np.float32))
            held["y"] = other.infer("holding", [tensor]).as_numpy("y").tolist()
            other.close()

        sender = threading.Thread(target=send)
        sender.start()
        _await_file(holding / "entered", process)
        process.send_signal(signal.SIGTERM)
        (holding / "release").touch()
        sender.join(WAIT)
        stdout, stderr = process.communicate(timeout=WAIT)
        client.close()
    assert held["y"] == [10.0, 20.0]
    assert process.returncode == 0, stderr
    assert f"aios: serving digits:3, holding:1 at http://127.0.0.1:{address['port']}" in stdout
    assert f"aios: requests need no secret ({SECRET_ENV} is not set)" in stdout
    assert not ready_file.exists()


def test_a_replica_given_a_secret_answers_only_with_it_and_hides_it_from_model_code(
    tmp_path: Path,
) -> None:
    """With the secret in its environment: requests without it get 401, with it 200;
    the model finds it neither in ``os.environ`` (at load or predict) nor in a child's
    environment; and the server says that requests need it."""
    probe = write_env_probe(tmp_path / "probe")
    ready_file = tmp_path / "ready.json"
    secret = "a1b2" * 16
    with replica(f"probe=python:{probe}", ready_file=ready_file, env={SECRET_ENV: secret}) as p:
        url = f"http://127.0.0.1:{json.loads(ready_file.read_text())['port']}"
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0]}]}
        infer = f"{url}/v2/models/probe/infer"
        assert httpx.post(infer, json=body).status_code == 401
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        answer = httpx.post(infer, json=body, headers={"X-AIOS-Replica-Secret": secret})
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [0.0, 0.0, 0.0]
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=WAIT)
    assert p.returncode == 0, stderr
    assert f"aios: requests need the secret of {SECRET_ENV} in x-aios-replica-secret" in stdout


def test_a_blank_secret_is_one_line_and_exit_2(artifacts: Artifacts) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aios.serving", "--model", f"d=onnx:{artifacts.mlp_onnx}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, SECRET_ENV: " "},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"aios: error: {SECRET_ENV} is set but empty: unset it to serve without a secret"
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model", "digits"], "--model: expected NAME[:VERSION]=FORMAT:PATH, got 'digits'"),
        (["--model", "d=keras:/x.h5"], "unknown format 'keras'"),
        (["--model", "d=onnx:/does/not/exist.onnx"], "cannot load onnx model /does/not/exist"),
        (["--model", "d=onnx:/a", "--max-batch-size", "4", "--preferred-batch-size", "8"], "8"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(arguments: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aios.serving", *arguments, "--port", "0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("aios: error: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("digits=onnx:m.onnx", ("digits", "1", "onnx", Path("m.onnx"))),
        ("digits:7=sklearn:/a:b/m.pkl", ("digits", "7", "sklearn", Path("/a:b/m.pkl"))),
        ("echo:v2=python:dir", ("echo", "v2", "python", Path("dir"))),
    ],
)
def test_model_arguments_parse(spec: str, parsed: tuple[str, str, str, Path]) -> None:
    assert parse_model(spec) == parsed


def test_a_model_argument_without_a_path_is_named() -> None:
    with pytest.raises(InvalidInput, match="--model: expected"):
        parse_model("digits=onnx")
