"""The public surface of aios.executors: a change here is a change for the control plane."""

from __future__ import annotations

import aios.executors


def test_executors_public_names() -> None:
    """aios.executors exports the contract, the local executor and its sandbox."""
    assert sorted(aios.executors.__all__) == [
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
    for name in aios.executors.__all__:
        assert hasattr(aios.executors, name), name


def test_local_executor_keeps_the_executor_contract() -> None:
    """LocalExecutor is an Executor as far as the type checker is concerned."""
    executor: aios.executors.Executor = aios.executors.LocalExecutor(isolation="rlimit")
    executor.close()
