"""Loading a model being registered as a job of the uploader's queue.

The registry's :class:`~aios.registry.probing.Prober` of the control plane: a model's
load is a job like any other — scheduled under its queue's quota, in a sandbox (no
network, the staged artifact bound read-only and nothing else of the control plane's
home, a PID namespace whose processes all end with it), held to a memory limit and a
time limit, as its uploader (whose tenant it belongs to). It writes its answer, and
with ``--to-onnx`` the converted model, into its own directory, where the control plane
reads them as it reads anything a job left: without following a link
(:mod:`aios.files`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from dataclasses import dataclass

from aios.control.auth import ADMIN, Principal
from aios.control.layout import job_dir
from aios.control.ops import ControlOps
from aios.control.specs import JobSpec
from aios.errors import AiosError, InvalidInput
from aios.files import NotARegularFile, open_in, read_in
from aios.registry.catalog import Caller
from aios.registry.probe import PROBE_ENV, ProbeResult, answer_of
from aios.registry.probing import ProbeRequest

__all__ = ["PROBE_MEMORY", "JobProbe"]

PROBE_MEMORY = "2G"
"""A load's memory limit."""
ANSWER = "probe-answer.json"
CONVERTED = "converted.onnx"
MAX_ANSWER = 1 << 20
MAX_CONVERTED = 8 << 30
_ENDED = {"succeeded", "failed", "cancelled", "unschedulable", "upstream_failed"}


@dataclass(frozen=True, slots=True)
class _Ticket:
    job_id: int
    request: ProbeRequest


class JobProbe:
    """Runs each load as a sandboxed job through ``ops``. Implements
    :class:`~aios.registry.probing.Prober`."""

    def __init__(self, ops: ControlOps, memory: str = PROBE_MEMORY) -> None:
        self.ops = ops
        self.memory = memory

    def start(self, user: Caller, request: ProbeRequest) -> object:
        assert isinstance(user, Principal)
        body = {
            "format": request.format,
            "path": str(request.path),
            "convert_to": CONVERTED if request.convert_to is not None else None,
            "answer": ANSWER,
        }
        spec = JobSpec.model_validate(
            {
                "name": f"probe-{request.model}"[:128],
                "command": [sys.executable, "-I", "-m", "aios.registry.probe", str(request.path)],
                "env": {PROBE_ENV: json.dumps(body), "OMP_NUM_THREADS": "1"},
                "cpus": 1,
                "memory": self.memory,
                "queue": request.queue,
                "time_limit": request.timeout,
                "grace": 1.0,
                "network": "none",
                "preemptible": False,
            }
        )
        try:
            view = self.ops.submit(user, spec, mounts=[str(request.path)])
        except AiosError as exc:
            raise InvalidInput(f"cannot load the model: its load job was refused: {exc}") from None
        return _Ticket(view.id, request)

    def poll(self, ticket: object) -> ProbeResult | None:
        assert isinstance(ticket, _Ticket)
        job = self.ops.get(ADMIN, ticket.job_id)
        if job.state not in _ENDED:
            return None
        request = ticket.request
        if job.reason == "time_limit":
            raise InvalidInput(
                f"cannot load {request.format} model {request.path.name}: it took longer "
                f"than {request.timeout:g} s"
            )
        directory = job_dir(self.ops.home, ticket.job_id)
        try:
            body = json.loads(read_in(directory, ANSWER, MAX_ANSWER))
        except (OSError, ValueError):
            body = {}
        if not isinstance(body, dict):
            body = {}
        stderr = ""
        with contextlib.suppress(OSError):  # NotARegularFile included: a job's own log
            stderr = read_in(directory, "stderr.log", MAX_ANSWER).decode(errors="replace")
        result = answer_of(body, request, job.exit_code, stderr)
        if request.convert_to is not None:
            try:
                with open_in(directory, CONVERTED) as source, request.convert_to.open("xb") as out:
                    shutil.copyfileobj(source, out)
                    if out.tell() > MAX_CONVERTED:
                        raise InvalidInput("the converted model is too large")
            except (OSError, NotARegularFile) as exc:
                raise InvalidInput(
                    f"cannot convert {request.path.name}: no converted model ({exc.strerror})"
                ) from None
        return result

    def cancel(self, ticket: object) -> None:
        assert isinstance(ticket, _Ticket)
        if self.ops.get(ADMIN, ticket.job_id).state not in _ENDED:
            with contextlib.suppress(AiosError):  # it ended meanwhile
                self.ops.cancel(ADMIN, ticket.job_id)
