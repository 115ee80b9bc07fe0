"""Jobs' working directories, made while the jobs wait in their queues.

Making a job's directory and its checkpoint directory is two inode allocations, and an
allocation can cost a millisecond of kernel time (ext4 without a journal skips every
inode freed in the last seconds, one by one). On the reconcile loop's thread that is
time no other job is launched in. So the loop hands each job it admits to
:class:`Workdirs`, whose thread makes the directories ahead (``mkdir`` does not hold
the interpreter lock); at launch the loop calls :func:`prepare_workdir` all the same,
which then costs two failed ``mkdir`` calls — or makes what the thread has not made
yet. Both sides tolerate the other having made either directory.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from queue import SimpleQueue

from aios.control.layout import prepare_workdir

__all__ = ["Workdirs"]

log = logging.getLogger("aios.control")


class Workdirs:
    """A thread that makes the working directories of admitted jobs under ``home``,
    in the order they were admitted."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._ahead: SimpleQueue[int | None] = SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aios-workdirs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread; directories not made yet are made at their launch."""
        if self._thread is not None:
            self._ahead.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def expect(self, job_id: int) -> None:
        """Makes the directory of ``job_id`` soon, on the thread (a committed job: a
        rolled-back one's id may be handed out again)."""
        if self._thread is not None:
            self._ahead.put(job_id)

    def _run(self) -> None:
        while (job_id := self._ahead.get()) is not None:
            try:
                prepare_workdir(self.home, job_id)
            except OSError as exc:  # the launch tries again, and reports it there
                log.debug("could not make the directory of job %d ahead: %s", job_id, exc)
