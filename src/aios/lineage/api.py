"""``GET /api/v1/lineage/{kind}/{ref}``: the lineage graph upstream and downstream of a
dataset version, a job or a model version, with the caller's tenant rules: another
tenant's jobs, models and datasets are left out, and a dataset the caller may not read
is answered as one that does not exist (:mod:`aios.lineage.access`). The routes that
share datasets (:mod:`aios.lineage.sharing`) come with it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import AfterValidator, BaseModel, Field

from aios.control.deps import User
from aios.control.specs import MAX_ID, NAME_PART
from aios.lineage.access import DatasetAccess
from aios.lineage.catalog import DataCatalog
from aios.lineage.graph import LineageTree, lineage
from aios.lineage.sharing import sharing_router
from aios.registry.specs import check_reference
from aios.store import Database

__all__ = ["LineageView", "TreeView", "lineage_router"]

REF = rf"^{NAME_PART}(@{NAME_PART})?$"
"""A job id, or a dataset or model version as ``NAME@REF`` (a dataset also as ``NAME``):
ASCII only, so no NUL (which a text column of PostgreSQL cannot hold) and no digit
that ``str.isdigit`` accepts but ``int`` cannot read (``²``)."""


def check_ref(ref: str) -> str:
    """``ref`` unless it holds a number that no job or version has: a job id past
    :data:`MAX_ID` or a version number past the registry's largest (ValueError naming
    it). Both are 32-bit integers on PostgreSQL, where looking such a number up would be
    an error rather than a node that is absent. (A dataset whose whole name is such a
    number is named ``NAME@latest`` here.)"""
    if ref.isdigit() and int(ref) > MAX_ID:
        raise ValueError(f"{ref}: no job has an id past {MAX_ID}")
    _, at, version = ref.rpartition("@")
    if at:
        check_reference(version)
    return ref


LineageRef = Annotated[str, PathParam(pattern=REF), AfterValidator(check_ref)]


class NodeView(BaseModel):
    kind: Literal["dataset", "job", "model"]
    ref: str
    label: str = ""


class TreeView(BaseModel):
    """A node and the nodes linked to it, one level further from the root; ``seen``
    marks a node already shown elsewhere in the same tree."""

    node: NodeView
    links: list[TreeView] = Field(default_factory=list)
    seen: bool = False

    @classmethod
    def of(cls, tree: LineageTree) -> TreeView:
        node = NodeView(kind=tree.node.kind, ref=tree.node.ref, label=tree.node.label)
        return cls(node=node, links=[cls.of(t) for t in tree.links], seen=tree.seen)


class LineageView(BaseModel):
    """``upstream``: what the root came from; ``downstream``: what came from it."""

    upstream: TreeView
    downstream: TreeView


def lineage_router(db: Database, catalog: DataCatalog) -> APIRouter:
    """``/lineage/…`` and ``/datasets/{name}/shares|owner``."""
    access = DatasetAccess(db, catalog)
    router = APIRouter(prefix="/lineage", tags=["lineage"])

    @router.get("/{kind}/{ref}", response_model=LineageView)
    def get_lineage(
        kind: Literal["dataset", "job", "model"], ref: LineageRef, user: User
    ) -> LineageView:
        """The graph around a dataset version (``NAME@REF``), a job (its id) or a model
        version (``NAME@NUMBER`` or ``NAME@ALIAS``)."""

        def resolve(text: str) -> str:
            return access.resolve(user, text, "dataset").ref

        may_read = access.readable(user)
        with db.sessions() as session:
            up, down = lineage(session, kind, ref, user.may_see, may_read, resolve)
        return LineageView(upstream=TreeView.of(up), downstream=TreeView.of(down))

    routes = APIRouter()
    routes.include_router(router)
    routes.include_router(sharing_router(access))
    return routes
