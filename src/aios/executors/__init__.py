"""Executors: where replicas run. The contract is in :mod:`aios.executors.base`; the
local executor runs them as isolated process groups on this machine."""

from aios.executors.base import (
    Executor,
    ExitReason,
    Handle,
    LaunchSpec,
    ProcessExit,
    StopReason,
)
from aios.executors.isolation import MemoryIsolation
from aios.executors.local import LocalExecutor

__all__ = [
    "Executor",
    "ExitReason",
    "Handle",
    "LaunchSpec",
    "LocalExecutor",
    "MemoryIsolation",
    "ProcessExit",
    "StopReason",
]
