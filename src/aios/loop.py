"""One background loop: a step on a thread, again every ``interval`` or when woken.

The control plane runs three: the reconciler, the deployment controller and the Ray
node watcher. Each hands :class:`Loop` its ``step``; the loop owns the thread, the
wake-up and the stop, so all three mean the same by them:

- the first step runs at :meth:`Loop.start`, then one after each wake or interval
  (step, then wait);
- :meth:`Loop.wake` makes the next step start at once (wakes that come during a step
  are one step after it, not one each);
- a step that raises is logged and the loop goes on at the next interval;
- :meth:`Loop.stop` lets the step in progress finish and joins the thread, for at most
  ``timeout`` seconds (a step that hangs past it is left to the daemon thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["JOIN_SECONDS", "Loop"]

log = logging.getLogger("aios.loop")

JOIN_SECONDS = 30.0
"""How long :meth:`Loop.stop` waits for a step in progress."""


class Loop:
    """Runs ``step()`` on a daemon thread named ``name``, every ``interval`` seconds
    or sooner when woken, until stopped."""

    def __init__(self, name: str, step: Callable[[], object], interval: float) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped.is_set()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"loop {self.name} is already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = JOIN_SECONDS) -> None:
        self._stopped.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                self._step()
            except Exception:
                log.exception("%s: step failed; trying again in %.3g s", self.name, self.interval)
            self._wake.wait(self.interval)
