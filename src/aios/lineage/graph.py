"""The lineage graph: which jobs read and published which dataset versions, and which
model versions were trained on what, upstream and downstream of one node.

Edges come from the control plane's database: ``job_datasets`` (a job read or
published a version) and the registry's model versions (``from_job``, ``dataset``).
A job that reused an earlier run's outputs is a reader of its inputs and names the
versions it reused, but is not their producer: upstream of a version is the job that
ran. Nodes the caller may not see (another tenant's jobs, models and datasets) are
left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.data.datasets import parse_version
from aios.errors import InvalidInput, NotFound
from aios.store.models import (
    JobDatasetRow,
    JobRow,
    ModelAliasRow,
    ModelRow,
    ModelVersionRow,
)

__all__ = ["LineageNode", "LineageTree", "NodeKind", "lineage"]

NodeKind = Literal["dataset", "job", "model"]
MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class LineageNode:
    """A dataset version (``NAME@V``), a job (its id) or a model version (``NAME@V``)."""

    kind: NodeKind
    ref: str
    label: str = ""


@dataclass(slots=True)
class LineageTree:
    """``node`` and, one level further in the walk's direction, the nodes linked to it;
    ``seen`` when the node was already expanded elsewhere in the same walk."""

    node: LineageNode
    links: list[LineageTree] = field(default_factory=list)
    seen: bool = False


class _Graph:
    def __init__(
        self,
        session: Session,
        may_see: Callable[[str], bool],
        may_read: Callable[[str], bool],
    ) -> None:
        self.session = session
        self.may_see = may_see
        self.may_read = may_read

    # -- nodes --------------------------------------------------------------------------
    def job(self, job_id: int) -> LineageNode | None:
        row = self.session.get(JobRow, job_id)
        if row is None or not self.may_see(row.queue):
            return None
        return LineageNode("job", str(job_id), f"{row.name} ({row.state})")

    def model(self, name: str, number: int) -> LineageNode | None:
        model = self.session.scalar(select(ModelRow).where(ModelRow.name == name))
        if model is None or not self.may_see(model.tenant):
            return None
        version = self.session.get(ModelVersionRow, (model.id, number))
        if version is None:
            return None
        return LineageNode("model", f"{name}@{number}", version.format)

    def model_number(self, name: str, version: str) -> int | None:
        """The version number ``version`` (a number or an alias) names."""
        if version.isascii() and version.isdigit():
            return int(version)
        return self.session.scalar(
            select(ModelAliasRow.version)
            .join(ModelRow, ModelRow.id == ModelAliasRow.model_id)
            .where(ModelRow.name == name, ModelAliasRow.alias == version)
        )

    def dataset(self, name: str, version: int) -> LineageNode | None:
        if not self.may_read(name):
            return None
        return LineageNode("dataset", f"{name}@{version}")

    # -- edges --------------------------------------------------------------------------
    def upstream(self, node: LineageNode) -> list[LineageNode]:
        if node.kind == "dataset":
            name, version = _split(node.ref)
            producers = self.session.scalars(
                select(JobDatasetRow.job_id).where(
                    JobDatasetRow.role == "output",
                    JobDatasetRow.dataset == name,
                    JobDatasetRow.version == version,
                    JobDatasetRow.cached_from.is_(None),
                )
            )
            return _present(self.job(job_id) for job_id in producers)
        if node.kind == "job":
            read = self.session.scalars(
                select(JobDatasetRow)
                .where(JobDatasetRow.job_id == int(node.ref), JobDatasetRow.role == "input")
                .order_by(JobDatasetRow.dataset)
            )
            return _present(self.dataset(row.dataset, row.version) for row in read)
        found = self._model_version(node.ref)
        linked: list[LineageNode | None] = []
        if found is not None and found.from_job is not None:
            linked.append(self.job(found.from_job))
        if found is not None and found.dataset:
            name, ref = parse_version(found.dataset)
            if ref.isdigit():
                linked.append(self.dataset(name, int(ref)))
        return _present(linked)

    def downstream(self, node: LineageNode) -> list[LineageNode]:
        if node.kind == "dataset":
            name, version = _split(node.ref)
            readers = self.session.scalars(
                select(JobDatasetRow.job_id)
                .where(
                    JobDatasetRow.role == "input",
                    JobDatasetRow.dataset == name,
                    JobDatasetRow.version == version,
                )
                .order_by(JobDatasetRow.job_id)
            )
            models = self.session.execute(
                select(ModelRow.name, ModelVersionRow.number)
                .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
                .where(ModelVersionRow.dataset == node.ref)
                .order_by(ModelRow.name, ModelVersionRow.number)
            )
            return _present(
                [self.job(job_id) for job_id in readers]
                + [self.model(model, number) for model, number in models]
            )
        if node.kind == "job":
            job_id = int(node.ref)
            published = self.session.scalars(
                select(JobDatasetRow)
                .where(JobDatasetRow.job_id == job_id, JobDatasetRow.role == "output")
                .order_by(JobDatasetRow.dataset)
            )
            models = self.session.execute(
                select(ModelRow.name, ModelVersionRow.number)
                .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
                .where(ModelVersionRow.from_job == job_id)
                .order_by(ModelRow.name, ModelVersionRow.number)
            )
            return _present(
                [self.dataset(row.dataset, row.version) for row in published]
                + [self.model(model, number) for model, number in models]
            )
        return []  # nothing is derived from a model version (yet)

    def _model_version(self, ref: str) -> ModelVersionRow | None:
        name, number = _split(ref)
        model = self.session.scalar(select(ModelRow).where(ModelRow.name == name))
        return None if model is None else self.session.get(ModelVersionRow, (model.id, number))

    # -- walks --------------------------------------------------------------------------
    def walk(
        self, node: LineageNode, step: Callable[[LineageNode], list[LineageNode]]
    ) -> LineageTree:
        expanded: set[LineageNode] = set()

        def visit(here: LineageNode, depth: int) -> LineageTree:
            if here in expanded or depth >= MAX_DEPTH:
                return LineageTree(here, seen=True)
            expanded.add(here)
            return LineageTree(here, [visit(there, depth + 1) for there in step(here)])

        return visit(node, 0)


def _present(nodes: Iterable[LineageNode | None]) -> list[LineageNode]:
    return [node for node in nodes if node is not None]


def _split(ref: str) -> tuple[str, int]:
    name, _, number = ref.rpartition("@")
    return name, int(number)


def lineage(
    session: Session,
    kind: NodeKind,
    ref: str,
    may_see: Callable[[str], bool],
    may_read: Callable[[str], bool],
    resolve_dataset: Callable[[str], str] | None = None,
) -> tuple[LineageTree, LineageTree]:
    """The upstream and downstream trees of the node ``ref`` names: a dataset version
    (``NAME@REF``, resolved to its number by ``resolve_dataset``), a job id or a model
    version (``NAME@NUMBER``). ``may_see`` says which queues' jobs and tenants' models
    the caller sees, ``may_read`` which datasets. NotFound when there is no such node
    for the caller."""
    graph = _Graph(session, may_see, may_read)
    root: LineageNode | None
    if kind == "job":
        if not (ref.isascii() and ref.isdigit()):
            raise InvalidInput(f"job {ref!r}: a job is named by its id")
        root = graph.job(int(ref))
    elif kind == "model":
        name, _, version = ref.rpartition("@")
        if not name or not version:
            raise InvalidInput(f"model {ref!r}: name a version as NAME@NUMBER or NAME@ALIAS")
        number = graph.model_number(name, version)
        root = None if number is None else graph.model(name, number)
    else:
        resolved = resolve_dataset(ref) if resolve_dataset is not None else ref
        name, number = _split(resolved)
        root = graph.dataset(name, number)
    if root is None:
        raise NotFound(f"no {kind} {ref}")
    return graph.walk(root, graph.upstream), graph.walk(root, graph.downstream)
