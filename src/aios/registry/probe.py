"""Loading a model being registered, in a process of its own, to read its signature.

Loading runs the model's own code (a pickle, a Python model's module), so it runs in
``python -m aios.registry.probe``, not in the control plane: a model that crashes,
hangs or leaks does so in a process that ends (a sandboxed job of the uploader's queue
when a control plane runs it: :mod:`aios.registry.probing`). It loads the file with the
serving runtime (``aios.serving.runtimes.load_runtime``), which is what proves that a
replica will load it, converts it first when ``--to-onnx`` asks, and writes its answer
as JSON to a file, as a model's code may print to stdout.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from aios.errors import AiosError, InvalidInput

if TYPE_CHECKING:
    from aios.serving.runtimes import ModelFormat

__all__ = ["PROBE_ENV", "PROBE_TIMEOUT", "ProbeRequestLike", "ProbeResult", "answer_of"]

PROBE_ENV = "AIOS_PROBE"
"""Where a probe run as a job finds its request (JSON), instead of stdin."""

PROBE_TIMEOUT = 300.0
"""Seconds a model may take to load (and convert) before registration gives up."""
STDERR_TAIL = 2000


class ProbeRequestLike(Protocol):
    """What :func:`answer_of` reads of a request."""

    @property
    def format(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def convert_to(self) -> Path | None: ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The signature the model declares (``Signature.to_json()``, which
    ``Signature.from_json`` reads back), and how it was converted, when it was."""

    signature: dict[str, Any]
    conversion: dict[str, Any] | None


def answer_of(
    body: dict[str, Any], request: ProbeRequestLike, returncode: int | None, stderr: str
) -> ProbeResult:
    """The result a loader left (``body``, its answer file's JSON, empty when it left
    none), or InvalidInput with its reason: the loader's own words, or how it ended."""
    fmt, path = request.format, request.path
    if not body:
        tail = stderr[-STDERR_TAIL:].strip()
        how = "was killed" if returncode is None else f"exited with code {returncode}"
        raise InvalidInput(
            f"cannot load {fmt} model {path.name}: the loader {how}" + (f": {tail}" if tail else "")
        )
    if "error" in body:
        # The loader names the staged file; the user knows it by its own name.
        message = str(body["error"])
        for staged in (path, request.convert_to):
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
    """Reads the request from ``$AIOS_PROBE`` (a job's) or stdin (a child's), loads the
    model and writes the answer where the request says."""
    given = os.environ.get(PROBE_ENV)
    request: dict[str, Any] = json.loads(given if given is not None else sys.stdin.buffer.read())
    if len(sys.argv) > 1:  # a job's: its argv names the artifact, rewritten on a Ray node
        request["path"] = sys.argv[1]
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
