"""The background loop the reconciler, the deployment controller and the Ray node
watcher share: step at start, step again when woken or after the interval, survive a
failing step, stop by joining."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from aios.loop import Loop


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def test_the_first_step_runs_at_start_without_waiting_for_the_interval() -> None:
    steps: list[float] = []
    loop = Loop("test-first", lambda: steps.append(time.monotonic()), interval=3600)
    loop.start()
    try:
        wait_for(lambda: len(steps) == 1)
    finally:
        loop.stop()


def test_a_wake_runs_the_next_step_at_once() -> None:
    steps: list[int] = []
    loop = Loop("test-wake", lambda: steps.append(1), interval=3600)
    loop.start()
    try:
        wait_for(lambda: len(steps) == 1)
        loop.wake()
        wait_for(lambda: len(steps) == 2)
    finally:
        loop.stop()


def test_wakes_during_a_step_make_one_more_step_not_one_each() -> None:
    entered, release = threading.Event(), threading.Event()
    steps: list[int] = []

    def step() -> None:
        steps.append(1)
        if len(steps) == 1:
            entered.set()
            release.wait(10)

    loop = Loop("test-coalesce", step, interval=3600)
    loop.start()
    try:
        assert entered.wait(10)
        for _ in range(5):
            loop.wake()
        release.set()
        wait_for(lambda: len(steps) == 2)
        time.sleep(0.2)
        assert len(steps) == 2
    finally:
        loop.stop()


def test_a_failing_step_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    steps: list[int] = []

    def step() -> None:
        steps.append(1)
        if len(steps) == 1:
            raise RuntimeError("boom")

    loop = Loop("test-fails", step, interval=0.01)
    loop.start()
    try:
        wait_for(lambda: len(steps) >= 3)
    finally:
        loop.stop()
    assert any("test-fails: step failed" in r.getMessage() for r in caplog.records)


def test_stop_joins_the_thread_and_no_step_runs_after() -> None:
    steps: list[int] = []
    loop = Loop("test-stop", lambda: steps.append(1), interval=0.01)
    loop.start()
    wait_for(lambda: len(steps) >= 2)
    loop.stop()
    assert loop.stopping
    count = len(steps)
    time.sleep(0.1)
    assert len(steps) == count
    assert not any(t.name == "test-stop" for t in threading.enumerate())


def test_a_loop_starts_once() -> None:
    loop = Loop("test-once", lambda: None, interval=3600)
    loop.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            loop.start()
    finally:
        loop.stop()
