"""Who loads a model being registered: the contract, and the plain child process.

Loading runs the model's own code (a pickle's ``__reduce__``, a Python model's module):
a hostile tenant's code. A :class:`Prober` starts the load and is asked, again and
again, whether it has finished, so that whoever waits decides how: the API's upload
route awaits it on the event loop (a probe that hangs or forks holds no thread of the
API), a library caller sleeps between asks.

The control plane's prober runs the load as a sandboxed job of the uploader's queue
(:mod:`aios.control.probes`): its limits, no network, its own PID namespace (a fork is
killed with it), a time limit. :class:`ChildProbe` is for the registry used alone (its
tests, a library): the load in a child process of this one, with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aios.errors import InvalidInput
from aios.registry.catalog import Caller
from aios.registry.probe import PROBE_TIMEOUT, STDERR_TAIL, ProbeResult, answer_of

__all__ = ["ChildProbe", "ProbeRequest", "Prober", "wait_for"]

POLL = 0.05
"""Seconds between two asks of a waiting caller."""


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """One load: the model's format, the staged artifact, where the ONNX conversion goes
    (with ``--to-onnx``), the model's name and the queue its tenant owns."""

    format: str
    path: Path
    convert_to: Path | None
    model: str
    queue: str | None
    timeout: float = PROBE_TIMEOUT


class Prober(Protocol):
    """Starts loads and tells when they have finished."""

    def start(self, user: Caller, request: ProbeRequest) -> object:
        """Starts loading; returns a ticket for :meth:`poll`. Quick: never waits for
        the load. InvalidInput when it cannot be started (a full queue counts as
        started: it waits its turn)."""
        ...

    def poll(self, ticket: object) -> ProbeResult | None:
        """The signature, once the load has finished; None while it runs. Raises
        InvalidInput with the loader's reason when the model does not load or the load
        passed its time limit. Quick."""
        ...

    def cancel(self, ticket: object) -> None:
        """Stops a load that has not finished (nothing of it is left). Idempotent."""
        ...


def wait_for(prober: Prober, ticket: object, deadline: float) -> ProbeResult:
    """Asks until the load has finished (a caller that may sleep: not the event loop);
    cancels it and raises InvalidInput at ``deadline`` (monotonic clock)."""
    while (result := prober.poll(ticket)) is None:
        if time.monotonic() > deadline:
            prober.cancel(ticket)
            raise InvalidInput("the model's load did not finish in time; nothing was registered")
        time.sleep(POLL)
    return result


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    request: ProbeRequest
    answer: Path
    started: float


class ChildProbe:
    """Loads in a child process of this one (``python -m aios.registry.probe``), killed
    at the request's timeout. Implements :class:`Prober`."""

    def start(self, user: Caller, request: ProbeRequest) -> object:
        del user  # a child of this process runs with its rights: no tenant to check
        fd, name = tempfile.mkstemp(prefix=".probe-", suffix=".json", dir=request.path.parent)
        os.close(fd)
        answer = Path(name)
        body = {
            "format": request.format,
            "path": str(request.path),
            "convert_to": None if request.convert_to is None else str(request.convert_to),
            "answer": str(answer),
        }
        env = {"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"}
        process = subprocess.Popen(
            [sys.executable, "-I", "-m", "aios.registry.probe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        assert process.stdin is not None
        with process.stdin:
            process.stdin.write(json.dumps(body).encode())
        return _Child(process, request, answer, time.monotonic())

    def poll(self, ticket: object) -> ProbeResult | None:
        assert isinstance(ticket, _Child)
        request = ticket.request
        if ticket.process.poll() is None:
            if time.monotonic() - ticket.started <= request.timeout:
                return None
            self.cancel(ticket)
            raise InvalidInput(
                f"cannot load {request.format} model {request.path.name}: it took longer "
                f"than {request.timeout:g} s"
            )
        assert ticket.process.stderr is not None
        with ticket.process.stderr:
            stderr = ticket.process.stderr.read()[-STDERR_TAIL:]
        try:
            body: dict[str, Any] = json.loads(ticket.answer.read_text() or "{}")
        except (OSError, ValueError):
            body = {}
        finally:
            ticket.answer.unlink(missing_ok=True)
        return answer_of(body, request, ticket.process.returncode, stderr.decode(errors="replace"))

    def cancel(self, ticket: object) -> None:
        assert isinstance(ticket, _Child)
        if ticket.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(ticket.process.pid, signal.SIGKILL)
            ticket.process.wait()
        ticket.answer.unlink(missing_ok=True)
        if ticket.process.stderr is not None:
            ticket.process.stderr.close()
