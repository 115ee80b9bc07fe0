"""The control plane's view of the data repository: resolving ``NAME@REF`` when a job
is submitted or a model registered, so a mistake is refused then, not when the job
runs.

The repository is ``$AIOS_DATA_REPO`` or ``$AIOS_HOME/data`` (what ``aios data`` uses),
opened with ``$AIOS_DATA_PASSPHRASE`` on first use and kept open; it may be created
after the control plane starts. Reads list the snapshots afresh each time, so a version
added by ``aios data add`` in another process is seen at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aios.data.datasets import DatasetVersion, DataStore, parse_version
from aios.errors import AiosError, InvalidInput, NotFound
from aios.lineage.stage import PASSPHRASE_ENV, open_store

__all__ = ["DataCatalog", "default_location"]


def default_location(home: Path) -> str:
    """``$AIOS_DATA_REPO``, else the control plane's ``home/data``."""
    return os.environ.get("AIOS_DATA_REPO") or str(home / "data")


class DataCatalog:
    """Dataset versions by reference, for the API's checks and the lineage graph."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._store: DataStore | None = None
        self._lock = threading.Lock()

    def _opened(self) -> DataStore:
        if self._store is None:
            try:
                self._store = open_store(self.location, os.environ.get(PASSPHRASE_ENV))
            except NotFound:
                raise InvalidInput(
                    f"no data repository at {self.location}; create one with 'aios data init'"
                ) from None
            except AiosError as exc:
                raise InvalidInput(f"the data repository at {self.location}: {exc}") from None
        return self._store

    def resolve(self, ref: str, what: str = "dataset") -> DatasetVersion:
        """The version ``ref`` names; InvalidInput naming ``what`` when there is none."""
        parse_version(ref)
        with self._lock:
            store = self._opened()
            try:
                return store.resolve(ref)
            except NotFound as exc:
                raise InvalidInput(f"{what} {ref}: {exc}") from None

    @contextmanager
    def opened(self) -> Iterator[DataStore | None]:
        """The open store for the block, under the catalog's lock (None when there is no
        repository): readers share the one the control plane keeps open instead of
        opening (and deriving the key of) another per request."""
        with self._lock:
            try:
                store = self._opened()
            except InvalidInput:
                store = None
            yield store

    def has_repository(self) -> bool:
        """Whether a repository can be opened at the location."""
        with self._lock:
            try:
                self._opened()
            except InvalidInput:
                return False
            return True

    def exists(self, name: str) -> bool:
        """Whether dataset ``name`` has a version (False without a repository)."""
        with self._lock:
            try:
                store = self._opened()
            except InvalidInput:
                return False
            return bool(store.versions(name, missing_ok=True))

    def names(self) -> frozenset[str]:
        """Every dataset the repository holds (none without a repository)."""
        with self.opened() as store:
            return frozenset() if store is None else frozenset(s.name for s in store.datasets())

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.repo.close()
                self._store = None
