"""``GET /api/v1/lineage/{kind}/{ref}``: the lineage graph upstream and downstream of a
dataset version, a job or a model version, with the caller's tenant rules."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from aios.control.api import caller
from aios.control.auth import Principal
from aios.lineage.catalog import DataCatalog
from aios.lineage.graph import LineageTree, lineage
from aios.store import Database

__all__ = ["LineageView", "TreeView", "lineage_router"]

User = Annotated[Principal, Depends(caller)]


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
    router = APIRouter(prefix="/lineage", tags=["lineage"])

    @router.get("/{kind}/{ref}", response_model=LineageView)
    def get_lineage(kind: Literal["dataset", "job", "model"], ref: str, user: User) -> LineageView:
        """The graph around a dataset version (``NAME@REF``), a job (its id) or a model
        version (``NAME@NUMBER`` or ``NAME@ALIAS``)."""

        def resolve(text: str) -> str:
            return catalog.resolve(text, "dataset").ref

        with db.sessions() as session:
            up, down = lineage(session, kind, ref, user.may_see, resolve)
        return LineageView(upstream=TreeView.of(up), downstream=TreeView.of(down))

    return router
