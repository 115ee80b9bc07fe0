"""Fixtures of the registry's tests: one real control plane per module (registering a
model loads it in a child process, so the tests share a plane and use their own model
names)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.control.control_harness import Running, start_plane, stop_plane


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_plane(tmp_path_factory.mktemp("registry") / "home")
    try:
        yield running
    finally:
        stop_plane(running)


@pytest.fixture
def in_use(plane: Running) -> Iterator[dict[tuple[str, int], list[str]]]:
    """Deployments by model version, as the registry's ``in_use`` reports them."""
    deployments: dict[tuple[str, int], list[str]] = {}
    registry = plane.plane.registry
    wired = registry.in_use
    registry.in_use = lambda name, version: deployments.get((name, version), [])
    try:
        yield deployments
    finally:
        registry.in_use = wired
