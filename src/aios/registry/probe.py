"""Loading a model being registered, in a child process, to read its signature.

Loading runs the model's own code (a pickle, a Python model's module), so it runs in
``python -m aios.registry.probe``, not in the control plane: a model that crashes,
hangs or leaks does so in a process that ends. The child loads the file with the
serving runtime (``aios.serving.runtimes.load_runtime``), which is what proves that a
replica will load it, converts it first when ``--to-onnx`` asks, and writes its answer
as JSON to a file, as a model's code may print to stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aios.errors import AiosError, InvalidInput

if TYPE_CHECKING:
    from aios.serving.runtimes import ModelFormat

__all__ = ["PROBE_TIMEOUT", "ProbeResult", "probe_model"]

PROBE_TIMEOUT = 300.0
"""Seconds a model may take to load (and convert) before registration gives up."""
STDERR_TAIL = 2000


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The signature the model declares (``Signature.to_json()``, which
    ``Signature.from_json`` reads back), and how it was converted, when it was."""

    signature: dict[str, Any]
    conversion: dict[str, Any] | None


def probe_model(
    fmt: str,
    path: Path,
    *,
    convert_to: Path | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> ProbeResult:
    """Loads the model at ``path`` in a child process and returns its signature; with
    ``convert_to``, converts the scikit-learn model there to ONNX first and reads the
    ONNX model's. Raises InvalidInput with the loader's reason when it does not load."""
    answer = path.parent / f".probe-{os.getpid()}-{os.urandom(4).hex()}.json"
    request = {
        "format": fmt,
        "path": str(path),
        "convert_to": None if convert_to is None else str(convert_to),
        "answer": str(answer),
    }
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "aios.registry.probe"],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(
            f"cannot load {fmt} model {path.name}: it took longer than {timeout:g} s"
        ) from None
    try:
        body: dict[str, Any] = json.loads(answer.read_text())
    except (OSError, ValueError):
        tail = done.stderr.decode(errors="replace")[-STDERR_TAIL:].strip()
        raise InvalidInput(
            f"cannot load {fmt} model {path.name}: the loader exited with code "
            f"{done.returncode}" + (f": {tail}" if tail else "")
        ) from None
    finally:
        answer.unlink(missing_ok=True)
    if "error" in body:
        # The loader names the staged file; the user knows it by its own name.
        message = str(body["error"])
        for staged in (path, convert_to):
            if staged is not None:
                message = message.replace(f"{staged.parent}{os.sep}", "")
        raise InvalidInput(message)
    return ProbeResult(body["signature"], body.get("conversion"))


def _inspect(request: dict[str, Any]) -> dict[str, Any]:
    fmt, path = str(request["format"]), Path(request["path"])
    conversion = None
    if request.get("convert_to"):
        from aios.registry.convert import convert_sklearn_model

        target = Path(request["convert_to"])
        converted = convert_sklearn_model(path, target)
        conversion = {
            "max_difference": converted.max_difference,
            "tolerance": converted.tolerance,
            "rows": converted.rows,
            "converter": converted.converter,
        }
        fmt, path = "onnx", target
    from aios.serving.runtimes import load_runtime

    runtime = load_runtime(cast("ModelFormat", fmt), path)
    return {"signature": runtime.signature.to_json(), "conversion": conversion}


def main() -> int:
    request: dict[str, Any] = json.loads(sys.stdin.buffer.read())
    answer = Path(request["answer"])
    try:
        body = _inspect(request)
        code = 0
    except AiosError as exc:
        body, code = {"error": str(exc)}, 2
    except Exception as exc:  # whatever the model's own code raises while it loads
        reason = f"{type(exc).__name__}: {exc}"
        body, code = (
            {"error": f"cannot load {request['format']} model {request['path']}: {reason}"},
            2,
        )
    answer.write_text(json.dumps(body))
    return code


if __name__ == "__main__":
    sys.exit(main())
