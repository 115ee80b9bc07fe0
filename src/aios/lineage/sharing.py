"""The routes that say which tenant a dataset belongs to and whom it is shared with
(the rules are :mod:`aios.lineage.access`'s):

- ``GET /api/v1/datasets/{name}/shares``: its owner and shares;
- ``POST /api/v1/datasets/{name}/shares`` ``{queue, read_only}``: shares it (again:
  changes ``read_only``);
- ``DELETE /api/v1/datasets/{name}/shares/{queue}``: takes a share away;
- ``PUT /api/v1/datasets/{name}/owner`` ``{queue}``: assigns it to a queue (admins).

The owning queue's members and admins may use the first three. A dataset the caller
may not read answers 404 as one that does not exist; one it reads through a share, 403.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from aios.control.deps import User
from aios.control.specs import NAME
from aios.lineage.access import DatasetAccess, DatasetRights

__all__ = ["OwnerSpec", "ShareSpec", "ShareView", "SharingView", "sharing_router"]

DatasetName = Annotated[str, PathParam(pattern=NAME)]
QueueName = Annotated[str, PathParam(pattern=NAME)]


class ShareSpec(BaseModel):
    queue: str = Field(pattern=NAME, description="the queue whose members get the dataset")
    read_only: bool = Field(False, description="read it as an input, never publish to it")


class OwnerSpec(BaseModel):
    queue: str = Field(pattern=NAME, description="the queue the dataset now belongs to")


class ShareView(BaseModel):
    queue: str
    read_only: bool
    created_at: float


class SharingView(BaseModel):
    """``owner``: the queue the dataset belongs to (None: no tenant's, admins' only)."""

    name: str
    owner: str | None
    shares: list[ShareView]

    @classmethod
    def of(cls, rights: DatasetRights) -> SharingView:
        shares = [
            ShareView(queue=s.queue, read_only=s.read_only, created_at=s.created_at)
            for s in rights.shares
        ]
        return cls(name=rights.name, owner=rights.owner, shares=shares)


def sharing_router(access: DatasetAccess) -> APIRouter:
    router = APIRouter(prefix="/datasets", tags=["datasets"])

    @router.get("/{name}/shares", response_model=SharingView)
    def get_shares(name: DatasetName, user: User) -> SharingView:
        return SharingView.of(access.sharing(user, name))

    @router.post("/{name}/shares", response_model=SharingView)
    def share(name: DatasetName, spec: ShareSpec, user: User) -> SharingView:
        return SharingView.of(access.share(user, name, spec.queue, spec.read_only, time.time()))

    @router.delete("/{name}/shares/{queue}", status_code=204)
    def unshare(name: DatasetName, queue: QueueName, user: User) -> Response:
        access.unshare(user, name, queue)
        return Response(status_code=204)

    @router.put("/{name}/owner", response_model=SharingView)
    def assign(name: DatasetName, spec: OwnerSpec, user: User) -> SharingView:
        return SharingView.of(access.assign(user, name, spec.queue, time.time()))

    return router
