"""The dynamic batcher: concurrent requests really share batches, only compatible ones
do, a full queue refuses at once, a slow answer times out, and drain finishes what was
queued. Models here are small runtimes whose ``predict`` can be held at a gate, so the
tests wait on events, not on the clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

import numpy as np
import pytest

from aios.errors import Busy, InvalidInput
from aios.serving.batching import Batcher, BatchingConfig, BatchRecord
from aios.serving.runtimes import Signature, TensorSpec

T = TypeVar("T")
Arrays = dict[str, np.ndarray[Any, Any]]
WAIT = 10.0
"""Seconds before a test that hangs fails instead (never reached when all is well)."""


class Doubler:
    """``y = 2 x`` row by row; ``gate`` (when set up) holds every call until opened."""

    def __init__(self, shape: tuple[int, ...] = (-1, -1), gated: bool = False) -> None:
        self.signature = Signature(
            (TensorSpec("x", "FP32", shape),), (TensorSpec("y", "FP32", shape),)
        )
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.entered = threading.Event()
        self.threads: set[int] = set()
        self.calls: list[int] = []

    def predict(self, inputs: Arrays) -> Arrays:
        self.threads.add(threading.get_ident())
        self.calls.append(len(inputs["x"]))
        self.entered.set()
        if not self.gate.wait(WAIT):
            raise TimeoutError("the test never opened the gate")
        return {"y": inputs["x"] * 2}


def rows(count: int, width: int = 2, start: float = 0.0) -> Arrays:
    return {"x": np.arange(count * width, dtype=np.float32).reshape(count, width) + start}


def run(coroutine: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, WAIT)

    return asyncio.run(bounded())


def recorded(batcher: Batcher) -> list[BatchRecord]:
    records: list[BatchRecord] = []
    batcher.observers.append(records.append)
    return records


def test_concurrent_requests_run_as_one_batch_and_get_their_own_rows() -> None:
    """Ten requests sent together fill one batch of ten; each gets back its rows."""
    model = Doubler()
    batcher = Batcher(model, BatchingConfig(max_batch_size=10, max_queue_delay=WAIT))
    records = recorded(batcher)

    async def scenario() -> list[Arrays]:
        return await asyncio.gather(*(batcher.submit(rows(1, start=i)) for i in range(10)))

    results = run(scenario())
    assert [(r.rows, r.requests) for r in records] == [(10, 10)]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], rows(1, start=i)["x"] * 2)


def test_requests_of_different_rows_batch_and_split_back() -> None:
    model = Doubler()
    batcher = Batcher(model, BatchingConfig(max_batch_size=6, max_queue_delay=WAIT))
    records = recorded(batcher)
    sizes = [1, 3, 2]

    async def scenario() -> list[Arrays]:
        return await asyncio.gather(*(batcher.submit(rows(n, start=10 * n)) for n in sizes))

    results = run(scenario())
    assert [(r.rows, r.requests) for r in records] == [(6, 3)]
    for n, result in zip(sizes, results, strict=True):
        np.testing.assert_array_equal(result["y"], rows(n, start=10 * n)["x"] * 2)


def test_incompatible_requests_run_in_separate_batches() -> None:
    """Different widths (non-batch dims) or more rows than a batch never share one."""
    model = Doubler()
    config = BatchingConfig(max_batch_size=4, max_queue_delay=0.001)
    batcher = Batcher(model, config)
    records = recorded(batcher)
    requests = [rows(1, width=2), rows(1, width=3), rows(1, width=2), rows(9, width=2)]

    async def scenario() -> list[Arrays]:
        return await asyncio.gather(*(batcher.submit(r) for r in requests))

    results = run(scenario())
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["y"], request["x"] * 2)
    assert sorted((r.rows, r.requests) for r in records) == [(1, 1), (2, 2), (9, 1)]


def test_preferred_batch_size_starts_without_waiting_for_the_delay() -> None:
    """With a delay longer than the test's patience, a preferred size still runs."""
    batcher = Batcher(
        Doubler(),
        BatchingConfig(max_batch_size=8, max_queue_delay=3 * WAIT, preferred_batch_sizes=(4,)),
    )
    records = recorded(batcher)

    async def scenario() -> None:
        await asyncio.gather(*(batcher.submit(rows(1)) for _ in range(4)))

    run(scenario())
    assert [r.rows for r in records] == [4]


def test_without_batching_each_request_runs_alone_off_the_event_loop() -> None:
    model = Doubler()
    batcher = Batcher(model, BatchingConfig(max_batch_size=1))
    records = recorded(batcher)

    async def scenario() -> int:
        await asyncio.gather(*(batcher.submit(rows(2)) for _ in range(5)))
        return threading.get_ident()

    loop_thread = run(scenario())
    assert [r.requests for r in records] == [1] * 5
    assert model.threads and loop_thread not in model.threads


def test_a_model_with_a_fixed_first_dim_is_not_batched() -> None:
    model = Doubler(shape=(2, 2))
    batcher = Batcher(model, BatchingConfig(max_batch_size=8, max_queue_delay=0.001))

    async def scenario() -> None:
        await asyncio.gather(*(batcher.submit(rows(2)) for _ in range(3)))

    run(scenario())
    assert model.calls == [2, 2, 2]


def test_a_full_queue_refuses_at_once_and_the_queued_still_finish() -> None:
    model = Doubler(gated=True)
    batcher = Batcher(model, BatchingConfig(max_batch_size=1, max_queue_size=2))

    async def scenario() -> tuple[str, int]:
        running = asyncio.ensure_future(batcher.submit(rows(1)))
        await asyncio.to_thread(model.entered.wait, WAIT)  # the first one is in the model
        queued = [asyncio.ensure_future(batcher.submit(rows(1))) for _ in range(2)]
        await asyncio.sleep(0)  # let both reach the queue
        with pytest.raises(Busy) as refused:
            await batcher.submit(rows(1))
        model.gate.set()
        done = await asyncio.gather(running, *queued)
        return str(refused.value), len(done)

    message, finished = run(scenario())
    assert "queue is full (2 requests waiting)" in message
    assert finished == 3


def test_a_request_not_answered_in_time_gets_busy() -> None:
    model = Doubler(gated=True)
    batcher = Batcher(model, BatchingConfig(max_batch_size=1, timeout=0.05))

    async def scenario() -> None:
        try:
            await batcher.submit(rows(1))
        finally:
            model.gate.set()

    with pytest.raises(Busy, match=r"no answer within the timeout of 0\.05 s"):
        run(scenario())
    assert batcher.in_flight == 0


def test_every_waiting_request_gets_its_own_timeout() -> None:
    """One running and one queued behind it: both get Busy once their time is up, and
    the queued one leaves the queue, so a later request is taken, not refused."""
    model = Doubler(gated=True)
    config = BatchingConfig(max_batch_size=1, timeout=0.05, max_queue_size=1)
    batcher = Batcher(model, config)

    async def scenario() -> tuple[list[BaseException | Arrays], Arrays]:
        running = asyncio.ensure_future(batcher.submit(rows(1)))
        await asyncio.to_thread(model.entered.wait, WAIT)
        queued = asyncio.ensure_future(batcher.submit(rows(1, start=1)))
        timed_out = list(await asyncio.gather(running, queued, return_exceptions=True))
        later = asyncio.ensure_future(batcher.submit(rows(1, start=2)))
        model.gate.set()
        return timed_out, await later

    timed_out, later = run(scenario())
    assert [type(outcome) for outcome in timed_out] == [Busy, Busy]
    np.testing.assert_array_equal(later["y"], rows(1, start=2)["x"] * 2)
    assert batcher.in_flight == 0


def test_drain_refuses_new_requests_and_finishes_the_queued() -> None:
    model = Doubler(gated=True)
    batcher = Batcher(model, BatchingConfig(max_batch_size=2, max_queue_delay=0.0))
    records = recorded(batcher)

    async def scenario() -> list[Arrays]:
        taken = [asyncio.ensure_future(batcher.submit(rows(1, start=i))) for i in range(5)]
        await asyncio.to_thread(model.entered.wait, WAIT)
        drained = asyncio.ensure_future(batcher.drain())
        await asyncio.sleep(0)
        with pytest.raises(Busy, match="shutting down"):
            await batcher.submit(rows(1))
        assert not drained.done()
        model.gate.set()
        await drained
        return await asyncio.gather(*taken)

    results = run(scenario())
    assert [float(r["y"][0, 0]) for r in results] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert sum(r.requests for r in records) == 5


def test_an_error_of_the_model_reaches_every_request_of_its_batch() -> None:
    class Failing(Doubler):
        def predict(self, inputs: Arrays) -> Arrays:
            raise ValueError("weights are corrupt")

    batcher = Batcher(Failing(), BatchingConfig(max_batch_size=4, max_queue_delay=WAIT))

    async def scenario() -> list[BaseException | Arrays]:
        return await asyncio.gather(
            *(batcher.submit(rows(1)) for _ in range(4)), return_exceptions=True
        )

    errors = run(scenario())
    assert all(isinstance(e, ValueError) and "corrupt" in str(e) for e in errors)


def test_a_model_that_does_not_answer_row_by_row_fails_its_batch_clearly() -> None:
    class Summing(Doubler):
        def predict(self, inputs: Arrays) -> Arrays:
            return {"y": inputs["x"].sum(axis=0)}

    batcher = Batcher(Summing(), BatchingConfig(max_batch_size=2, max_queue_delay=WAIT))

    async def scenario() -> list[BaseException | Arrays]:
        return await asyncio.gather(
            *(batcher.submit(rows(1, width=3)) for _ in range(2)), return_exceptions=True
        )

    errors = run(scenario())
    assert all(isinstance(e, RuntimeError) and "batching off" in str(e) for e in errors)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_batch_size": -1}, "max_batch_size must be ≥ 0"),
        ({"max_queue_delay": -0.1}, "max_queue_delay"),
        ({"max_batch_size": 4, "preferred_batch_sizes": (8,)}, "preferred_batch_sizes: 8"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"timeout": 0.0}, "timeout must be > 0"),
        ({"instances": 0}, "instances"),
    ],
)
def test_bad_batching_settings_are_named(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        BatchingConfig(**config)
