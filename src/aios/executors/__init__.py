"""Executors: where replicas run. The contract is in :mod:`aios.executors.base`; the
local executor runs them as isolated process groups on this machine, each in its
sandbox (:mod:`aios.executors.sandbox`) when its spec asks for one."""

from aios.executors.base import (
    Executor,
    ExitReason,
    Handle,
    LaunchSpec,
    ProcessExit,
    SandboxSpec,
    StopReason,
)
from aios.executors.isolation import MemoryIsolation
from aios.executors.local import LocalExecutor
from aios.executors.sandbox import Sandbox, SandboxUnavailable

__all__ = [
    "Executor",
    "ExitReason",
    "Handle",
    "LaunchSpec",
    "LocalExecutor",
    "MemoryIsolation",
    "ProcessExit",
    "Sandbox",
    "SandboxSpec",
    "SandboxUnavailable",
    "StopReason",
]
