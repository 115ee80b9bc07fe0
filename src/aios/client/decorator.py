"""``@aios.job(...)``: a Python function that runs as an AIOS job.

::

    @aios.job(gpus=1, cpus=2, mem="4G")
    def train(lr: float) -> float: ...

    run = train.submit(0.1)      # queued on the control plane
    loss = run.result()          # waits, then returns what train returned
    train(0.1)                   # still an ordinary local call
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from aios.client.client import ApiError, Client
from aios.control.specs import JobView

__all__ = ["JobFunction", "JobRun", "job"]

P = ParamSpec("P")
R = TypeVar("R")


class JobRun(Generic[R]):
    """A submitted call: its job id, and its return value once it ends."""

    def __init__(self, client: Client, view: JobView) -> None:
        self.client = client
        self.id = view.id

    def wait(self, timeout: float | None = None) -> JobView:
        return self.client.wait(self.id, timeout)

    def result(self, timeout: float | None = None) -> R:
        """Waits for the job; returns the function's value, or raises ApiError naming
        how the job ended when it did not succeed."""
        view = self.wait(timeout)
        if view.state != "succeeded":
            raise ApiError(409, f"job {self.id} {view.state}: {view.message}")
        value: R = self.client.result(self.id)
        return value


class JobFunction(Generic[P, R]):
    def __init__(self, function: Callable[P, R], options: dict[str, Any]) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.options = options

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> JobRun[R]:
        client = self.options.get("client") or Client()
        options = {k: v for k, v in self.options.items() if k != "client"}
        view = client.submit(function=self.function, args=args, kwargs=kwargs, **options)
        return JobRun(client, view)


def job(
    *,
    cpus: float | str = 1,
    mem: int | str = "1G",
    gpus: int = 0,
    gpu_kind: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    retries: int = 0,
    time_limit: float | str | None = None,
    client: Client | None = None,
) -> Callable[[Callable[P, R]], JobFunction[P, R]]:
    """Makes a function submittable as a job with these resources."""
    options: dict[str, Any] = {
        "cpus": cpus,
        "memory": mem,
        "gpus": gpus,
        "gpu_kind": gpu_kind,
        "queue": queue,
        "priority": priority,
        "retries": retries,
        "time_limit": time_limit,
        "client": client,
    }

    def wrap(function: Callable[P, R]) -> JobFunction[P, R]:
        return JobFunction(function, options)

    return wrap
