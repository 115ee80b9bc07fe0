"""Dynamic batching: requests for one model version wait briefly in a bounded queue and
run together, stacked along axis 0, in a worker thread.

A batch starts when it is as full as it can get (``max_batch_size`` rows, or the next
compatible request would not fit), when its rows reach one of the
``preferred_batch_sizes``, or when its oldest request has waited ``max_queue_delay``.
While every worker (``instances``) is busy the queue keeps filling, so under load
batches grow by themselves and the delay is only paid when the server is idle.

Only *compatible* requests share a batch: the same input names, dtypes and non-batch
dims, every input with the same number of rows. Any other request, or one with more
rows than ``max_batch_size``, runs alone, as every request does when batching is off or
the model's inputs have a fixed first dim. The model always runs off the event loop.

Backpressure: a request that finds ``max_queue_size`` requests waiting is refused at
once with :class:`~aios.errors.Busy`; one not answered within ``timeout`` seconds gets
Busy too. :meth:`Batcher.drain` stops taking requests and finishes the queued ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aios.errors import Busy, InvalidInput
from aios.serving.runtimes import Runtime

__all__ = ["Answer", "BatchObserver", "BatchRecord", "Batcher", "BatchingConfig", "Ticket"]

log = logging.getLogger("aios.serving")

Arrays = dict[str, np.ndarray[Any, Any]]


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """How one model version batches; ``max_batch_size`` ≤ 1 turns batching off.

    ``max_queue_delay`` and ``timeout`` are in seconds; ``timeout`` None waits forever.
    ``instances`` is the number of batches that may run at once (worker threads).
    """

    max_batch_size: int = 64
    max_queue_delay: float = 0.002
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 256
    timeout: float | None = 30.0
    instances: int = 1

    def __post_init__(self) -> None:
        if self.max_batch_size < 0:
            raise InvalidInput(f"max_batch_size must be ≥ 0, got {self.max_batch_size}")
        if self.max_queue_delay < 0:
            raise InvalidInput(f"max_queue_delay must be ≥ 0 s, got {self.max_queue_delay}")
        bad = [size for size in self.preferred_batch_sizes if not 0 < size <= self.max_batch_size]
        if bad:
            raise InvalidInput(
                f"preferred_batch_sizes: {bad[0]} is not between 1 and max_batch_size "
                f"({self.max_batch_size})"
            )
        if self.max_queue_size < 1:
            raise InvalidInput(f"max_queue_size must be ≥ 1, got {self.max_queue_size}")
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidInput(f"timeout must be > 0 s, got {self.timeout}")
        if self.instances < 1:
            raise InvalidInput(f"instances must be ≥ 1, got {self.instances}")

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One batch that ran: its rows, its requests, how long each waited in the queue,
    and how long the model took."""

    rows: int
    requests: int
    queue_seconds: tuple[float, ...]
    run_seconds: float


BatchObserver = Callable[[BatchRecord], None]
"""Called on the event loop after every batch that ran (for metrics and traces)."""


Answer = Callable[[Arrays | None, BaseException | None], None]
"""Called once with a request's outputs, or with the error that ended it."""


class Ticket:
    """A request in a batcher's queue, as :meth:`Batcher.enqueue` took it; ``done``
    once answered, timed out or withdrawn."""

    __slots__ = ("answer", "batcher", "done", "enqueued", "inputs", "key", "rows")

    def __init__(
        self,
        batcher: Batcher,
        inputs: Arrays,
        rows: int,
        key: Hashable | None,  # None: runs alone
        answer: Answer,
    ) -> None:
        self.batcher = batcher
        self.inputs = inputs
        self.rows = rows
        self.key = key
        self.answer = answer
        self.enqueued = time.monotonic()
        self.done = False

    def withdraw(self) -> None:
        """Takes the request out of the queue unanswered (no-op once it is done; a
        batch already running finishes, and its answer for this request is dropped)."""
        self.batcher._withdraw(self)


class Batcher:
    """The queue and the worker of one model version.

    Use it from one event loop: the worker task starts with the first :meth:`submit`.
    """

    def __init__(self, runtime: Runtime, config: BatchingConfig, *, label: str = "model") -> None:
        self.runtime = runtime
        self.config = config
        self.label = label
        self.observers: list[BatchObserver] = []
        self._batching = config.enabled and runtime.signature.batchable
        self._preferred = frozenset(config.preferred_batch_sizes)
        self._queue: deque[Ticket] = deque()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(config.instances)
        self._running: set[asyncio.Task[None]] = set()
        self._threads = _ModelThreads(config.instances, f"aios-{label}")
        self._worker: asyncio.Task[None] | None = None
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        self._in_flight = 0
        self._watched: deque[Ticket] = deque()
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for a batch."""
        return len(self._queue)

    @property
    def full(self) -> bool:
        """Whether a request enqueued now would be refused for want of room: the server
        checks this on a request's head, to refuse it before reading its body."""
        return len(self._queue) >= self.config.max_queue_size

    @property
    def in_flight(self) -> int:
        """Requests taken and not yet answered (waiting or running)."""
        return self._in_flight

    @property
    def draining(self) -> bool:
        return self._draining

    async def submit(self, inputs: Arrays) -> Arrays:
        """The model's outputs for ``inputs`` (already checked against its signature).

        Raises Busy when the queue is full or draining, or after ``timeout`` seconds;
        anything the model raises is raised here.
        """
        future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()

        def answer(outputs: Arrays | None, error: BaseException | None) -> None:
            if future.done():
                return
            if isinstance(error, asyncio.CancelledError):
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                assert outputs is not None
                future.set_result(outputs)

        ticket = self.enqueue(inputs, answer)
        try:
            return await future
        finally:
            ticket.withdraw()

    def enqueue(self, inputs: Arrays, answer: Answer) -> Ticket:
        """:meth:`submit` without a coroutine or future: ``answer`` is called on the
        loop with the outputs or the error once the request's batch has run (or it timed
        out). Raises Busy at once, as :meth:`submit` does.

        The inference server's hot path: an asyncio future per request, its callback
        and its ``call_soon`` cost more than the rest of the batcher's work for it."""
        if self._draining:
            raise Busy(f"{self.label} is shutting down")
        if self.full:
            raise Busy(f"{self.label}: the queue is full ({len(self._queue)} requests waiting)")
        loop = self._loop
        if loop is None:  # the first request: the loop is the one the batcher serves
            loop = self._loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        rows, key = self._shape_key(inputs)
        item = Ticket(self, inputs, rows, key, answer)
        self._queue.append(item)
        self._arrived.set()
        self._in_flight += 1
        if self.config.timeout is not None:
            self._watch(loop, item)
        return item

    def _settle(
        self, item: Ticket, outputs: Arrays | None, error: BaseException | None = None
    ) -> None:
        """Answers ``item`` (once): its outputs or its error."""
        if item.done:
            return
        item.done = True
        self._in_flight -= 1
        watched = self._watched
        while watched and watched[0].done:
            watched.popleft()
        try:
            item.answer(outputs, error)
        except Exception:  # one caller's bug must not cost the rest of the batch
            log.exception("%s: answering a request failed", self.label)

    def _withdraw(self, item: Ticket) -> None:
        if item.done:
            return
        item.done = True
        self._in_flight -= 1
        if item in self._queue:
            self._queue.remove(item)

    def _watch(self, loop: asyncio.AbstractEventLoop, item: Ticket) -> None:
        """Puts ``item`` under the timeout: one timer for the oldest request watched, not
        one per request (a timer set and cancelled costs more than the rest of
        :meth:`submit`). Requests arrive in deadline order, so the oldest is first."""
        self._watched.append(item)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.config.timeout or 0.0, self._expire_overdue)

    def _expire_overdue(self) -> None:
        """Answers Busy to every watched request not answered within the timeout, then
        sets the timer for the oldest one left."""
        self._watchdog = None
        timeout = self.config.timeout or 0.0
        now = time.monotonic()
        watched = self._watched
        while watched:
            item = watched[0]
            if not item.done:
                left = item.enqueued + timeout - now
                if left > 0:
                    loop = asyncio.get_running_loop()
                    self._watchdog = loop.call_later(left, self._expire_overdue)
                    return
                if item in self._queue:
                    self._queue.remove(item)
                busy = Busy(f"{self.label}: no answer within the timeout of {timeout:g} s")
                self._settle(item, None, busy)
                continue  # _settle dropped it and every answered one after it
            watched.popleft()

    async def drain(self) -> None:
        """Stops taking requests, answers every queued one, then stops the worker."""
        self._draining = True
        self._arrived.set()
        if self._worker is not None:
            await asyncio.shield(self._worker)
        self._threads.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _shape_key(self, inputs: Arrays) -> tuple[int, Hashable | None]:
        """Rows of a request and what it must share with others to batch with them."""
        if len(inputs) == 1 and self._batching:  # the common case, without the generality
            ((name, array),) = inputs.items()
            if array.ndim and array.shape[0] <= self.config.max_batch_size:
                return array.shape[0], ((name, array.dtype.str, array.shape[1:]),)
        arrays = list(inputs.values())
        if not arrays or any(array.ndim == 0 for array in arrays):
            return 1, None
        rows = arrays[0].shape[0]
        if (
            not self._batching
            or rows > self.config.max_batch_size
            or any(a.shape[0] != rows for a in arrays)
        ):
            return rows, None
        return rows, tuple((name, a.dtype.str, a.shape[1:]) for name, a in sorted(inputs.items()))

    async def _work(self) -> None:
        try:
            while True:
                await self._slots.acquire()
                batch = await self._next_batch()
                if batch is None:
                    self._slots.release()
                    break
                assert self._loop is not None
                task = self._loop.create_task(self._execute(batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if self._running:
                await asyncio.gather(*self._running)
        except BaseException as exc:  # a bug here must not leave requests hanging
            for item in list(self._queue):
                self._settle(item, None, exc)
            raise

    async def _next_batch(self) -> list[Ticket] | None:
        """The next batch to run, taken off the queue; None when draining and empty."""
        while True:
            while self._queue and self._queue[0].done:
                self._queue.popleft()  # timed out or cancelled while waiting
            if not self._queue:
                if self._draining:
                    return None
                self._arrived.clear()
                await self._arrived.wait()
                continue
            head = self._queue[0]
            if head.key is None:
                return [self._queue.popleft()]
            batch, rows, full = self._gather(head)
            wait = head.enqueued + self.config.max_queue_delay - time.monotonic()
            if full or wait <= 0 or rows in self._preferred or self._draining:
                taken = {id(item) for item in batch}
                self._queue = deque(item for item in self._queue if id(item) not in taken)
                return batch
            self._arrived.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._arrived.wait()
            except TimeoutError:
                pass

    def _gather(self, head: Ticket) -> tuple[list[Ticket], int, bool]:
        """Queued requests compatible with ``head``, oldest first, up to the batch size;
        ``full`` says that the batch cannot grow any more."""
        limit = self.config.max_batch_size
        batch, rows = [head], head.rows
        for item in self._queue:
            if item is head or item.key != head.key or item.done:
                continue
            if rows + item.rows > limit:
                return batch, rows, True
            batch.append(item)
            rows += item.rows
        return batch, rows, rows >= limit

    async def _execute(self, batch: list[Ticket]) -> None:
        live = [item for item in batch if not item.done]
        try:
            if not live:
                return
            started = time.monotonic()
            inputs = live[0].inputs if len(live) == 1 else _concatenate(live)
            outputs = await self._threads.run(self.runtime.predict, inputs)
            run_seconds = time.monotonic() - started
            results = [outputs] if len(live) == 1 else _split(outputs, live)
            for item, result in zip(live, results, strict=True):
                self._settle(item, result)
            record = BatchRecord(
                rows=sum(item.rows for item in live),
                requests=len(live),
                queue_seconds=tuple(started - item.enqueued for item in live),
                run_seconds=run_seconds,
            )
            for observer in self.observers:
                observer(record)
        except Exception as exc:
            for item in live:
                self._settle(item, None, exc)
        finally:
            self._slots.release()
            self._arrived.set()


Predict = Callable[[Arrays], Arrays]
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Arrays]", Predict, Arrays]


class _ModelThreads:
    """The threads that run one model version's batches, fed through a queue.

    Cheaper than ``loop.run_in_executor`` on a thread pool, which every batch pays: no
    ``concurrent.futures.Future`` and its lock between the two threads, no bookkeeping
    of idle threads. Measured on one core, a batch's round trip to its thread and back
    costs half the CPU time and a third of the latency. Threads start on first use.
    """

    def __init__(self, count: int, name: str) -> None:
        self._count = count
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def run(self, predict: Predict, inputs: Arrays) -> asyncio.Future[Arrays]:
        """A future, on the running loop, of ``predict(inputs)`` run on one of the threads."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Arrays] = loop.create_future()
        while len(self._threads) < self._count:
            thread = threading.Thread(
                target=_serve_jobs,
                args=(self._jobs,),
                name=f"{self._name}-{len(self._threads)}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        self._jobs.put((loop, future, predict, inputs))
        return future

    def close(self) -> None:
        """Ends every thread once the jobs already queued are done."""
        for _ in self._threads:
            self._jobs.put(None)


def _serve_jobs(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        loop, future, predict, inputs = job
        try:
            outcome: tuple[Arrays | None, BaseException | None] = (predict(inputs), None)
        except BaseException as exc:  # the waiting request gets it, whatever it is
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # a closed loop: no one waits any more
            loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(
    future: asyncio.Future[Arrays], result: Arrays | None, error: BaseException | None
) -> None:
    if future.done():  # cancelled while the model ran
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


def _concatenate(batch: list[Ticket]) -> Arrays:
    return {name: np.concatenate([item.inputs[name] for item in batch]) for name in batch[0].inputs}


def _split(outputs: Arrays, batch: list[Ticket]) -> list[Arrays]:
    """Each request's rows of the batch's ``outputs``, as views."""
    total = sum(item.rows for item in batch)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise RuntimeError(
                f"output {name!r} has shape {list(array.shape)} for a batch of {total} rows: "
                "the model does not answer row by row; serve it with batching off"
            )
    if len(outputs) == 1:  # the common case, without a dict comprehension per request
        ((name, array),) = outputs.items()
        pieces = []
        start = 0
        for item in batch:
            stop = start + item.rows
            pieces.append({name: array[start:stop]})
            start = stop
        return pieces
    pieces = []
    start = 0
    for item in batch:
        stop = start + item.rows
        pieces.append({name: array[start:stop] for name, array in outputs.items()})
        start = stop
    return pieces
