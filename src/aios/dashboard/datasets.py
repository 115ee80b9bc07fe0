"""Read-only dataset routes for the Datasets page (``/api/v1/datasets…``): datasets
with their versions, sizes, tags and label sets, and the diff of two versions.

They read the control plane's data repository through its
:class:`~aios.lineage.catalog.DataCatalog`, with the tenant rules of
:mod:`aios.lineage.access`: a tenant sees the datasets its queue owns or has a share
of, an admin every dataset; any other is answered as one the repository does not hold
(404 ``no dataset``, or 400 when there is no repository at all).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel

from aios.control.deps import User
from aios.data.datasets import DatasetVersion, DataStore
from aios.data.labelsets import LabelStore
from aios.errors import InvalidInput, NotFound
from aios.lineage.access import DatasetAccess
from aios.lineage.catalog import DataCatalog
from aios.names import NAME

__all__ = ["DatasetDetail", "DatasetSummaryView", "DiffView", "dataset_router"]

DatasetName = Annotated[str, PathParam(pattern=NAME)]
Ref = Annotated[str, Query(pattern=NAME)]
T = TypeVar("T")


class VersionView(BaseModel):
    ref: str
    version: int
    time: datetime
    message: str
    files: int
    bytes: int
    tags: list[str]
    produced_by: int | None
    """The job that published this version, when a job did."""
    complete: bool
    """False when a file changed while it was read (``changed``) or vanished before
    (``vanished``); the version holds what was read."""
    changed: list[str]
    vanished: list[str]


class LabelSetView(BaseModel):
    name: str
    version: int
    dataset_version: int
    files: int
    boxes: int
    classes: list[str]


class DatasetSummaryView(BaseModel):
    name: str
    versions: int
    latest: VersionView


class DatasetDetail(BaseModel):
    name: str
    versions: list[VersionView]
    labels: list[LabelSetView]


class EntryView(BaseModel):
    path: str
    old_size: int | None
    new_size: int | None


class DiffView(BaseModel):
    a: str
    b: str
    added: list[EntryView]
    removed: list[EntryView]
    modified: list[EntryView]


def _version(v: DatasetVersion) -> VersionView:
    job = v.lineage.get("job")
    return VersionView(
        ref=v.ref,
        version=v.version,
        time=v.time,
        message=v.message,
        files=v.files,
        bytes=v.bytes,
        tags=list(v.tags),
        produced_by=int(job) if isinstance(job, int | str) and str(job).isdigit() else None,
        complete=v.complete,
        changed=list(v.changed),
        vanished=list(v.vanished),
    )


def _read(catalog: DataCatalog, work: Callable[[DataStore], T], empty: T) -> T:
    with catalog.opened() as store:
        return empty if store is None else work(store)


def dataset_router(catalog: DataCatalog, access: DatasetAccess) -> APIRouter:
    router = APIRouter(prefix="/datasets", tags=["datasets"])

    @router.get("", response_model=list[DatasetSummaryView])
    def list_datasets(user: User) -> list[DatasetSummaryView]:
        """Every dataset the caller may read, with its latest version (none without a
        repository)."""
        may_read = access.readable(user)

        def work(store: DataStore) -> list[DatasetSummaryView]:
            return [
                DatasetSummaryView(name=s.name, versions=s.versions, latest=_version(s.latest))
                for s in store.datasets()
                if may_read(s.name)
            ]

        return _read(catalog, work, [])

    def check_read(may_read: Callable[[str], bool], name: str) -> None:
        """Called once the repository is open (that there is none is said first, as
        for a dataset that does not exist): another tenant's dataset does not exist."""
        if not may_read(name):
            raise NotFound(f"no dataset {name!r}")

    @router.get("/{name}", response_model=DatasetDetail)
    def get_dataset(name: DatasetName, user: User) -> DatasetDetail:
        may_read = access.readable(user)

        def work(store: DataStore) -> DatasetDetail:
            check_read(may_read, name)
            versions = [_version(v) for v in reversed(store.versions(name))]
            labels = [
                LabelSetView(
                    name=s.name,
                    version=s.version,
                    dataset_version=s.dataset_version,
                    files=s.files,
                    boxes=s.boxes,
                    classes=list(s.classes),
                )
                for s in LabelStore(store).sets(name)
            ]
            return DatasetDetail(name=name, versions=versions, labels=labels)

        detail = _read(catalog, work, None)
        if detail is None:
            raise InvalidInput(f"no data repository at {catalog.location}")
        return detail

    @router.get("/{name}/diff", response_model=DiffView)
    def diff(name: DatasetName, a: Ref, b: Ref, user: User) -> DiffView:
        """What changed from version ``a`` to ``b`` (numbers or tags)."""
        may_read = access.readable(user)

        def work(store: DataStore) -> DiffView:
            check_read(may_read, name)
            d = store.diff(name, a, b)
            return DiffView(
                a=d.a.ref,
                b=d.b.ref,
                added=[EntryView(path=e.path, old_size=None, new_size=e.size) for e in d.added],
                removed=[EntryView(path=e.path, old_size=e.size, new_size=None) for e in d.removed],
                modified=[
                    EntryView(path=c.path, old_size=c.old_size, new_size=c.new_size)
                    for c in d.modified
                ],
            )

        found = _read(catalog, work, None)
        if found is None:
            raise InvalidInput(f"no data repository at {catalog.location}")
        return found

    return router
