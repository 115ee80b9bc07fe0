"""Finding models and versions in the database as a caller may see them, and the views
the API returns for them.

A caller sees the models of its tenant (an admin sees all); any other model is reported
as missing, as a tenant is never told what another tenant holds.
"""

from __future__ import annotations

import re
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from aios.errors import InvalidInput, NotFound
from aios.registry.refs import LATEST, REFERENCE
from aios.registry.specs import (
    ConversionView,
    ModelVersionView,
    ModelView,
    SignatureView,
)
from aios.store.models import ModelAliasRow, ModelRow, ModelVersionRow

__all__ = [
    "Caller",
    "aliases_of",
    "find_model",
    "find_version",
    "may_see",
    "model_view",
    "version_view",
]


class Caller(Protocol):
    """Who is asking (the control plane's ``Principal`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def tenant(self) -> str | None: ...

    @property
    def admin(self) -> bool: ...


def may_see(user: Caller, tenant: str) -> bool:
    return user.admin or user.tenant == tenant


def find_model(session: Session, user: Caller, name: str) -> ModelRow:
    """Model ``name``; NotFound when there is none the caller may see."""
    row = session.scalars(select(ModelRow).where(ModelRow.name == name)).first()
    if row is None or not may_see(user, row.tenant):
        raise NotFound(f"no model {name!r}")
    return row


def find_version(session: Session, model: ModelRow, ref: str) -> ModelVersionRow:
    """The version ``ref`` names: a number, an alias, or ``latest`` (the highest)."""
    if not re.fullmatch(REFERENCE, ref):
        raise InvalidInput(f"version: {ref!r} is not a number, an alias or 'latest'")
    if ref == LATEST:
        row = session.scalars(
            select(ModelVersionRow)
            .where(ModelVersionRow.model_id == model.id)
            .order_by(ModelVersionRow.number.desc())
            .limit(1)
        ).first()
        if row is None:
            raise NotFound(f"model {model.name!r} has no versions")
        return row
    if ref.isdigit():
        found = session.get(ModelVersionRow, (model.id, int(ref)))
        if found is None:
            raise NotFound(f"model {model.name!r} has no version {ref}")
        return found
    alias = session.get(ModelAliasRow, (model.id, ref))
    if alias is None:
        raise NotFound(f"model {model.name!r} has no alias {ref!r}")
    return session.get_one(ModelVersionRow, (model.id, alias.version))


def aliases_of(session: Session, model: ModelRow) -> dict[str, int]:
    rows = session.scalars(
        select(ModelAliasRow)
        .where(ModelAliasRow.model_id == model.id)
        .order_by(ModelAliasRow.alias)
    )
    return {row.alias: row.version for row in rows}


def model_view(session: Session, model: ModelRow) -> ModelView:
    numbers = list(
        session.scalars(select(ModelVersionRow.number).where(ModelVersionRow.model_id == model.id))
    )
    return ModelView(
        name=model.name,
        tenant=model.tenant,
        owner=model.owner,
        created_at=model.created_at,
        latest=max(numbers, default=None),
        versions=len(numbers),
        aliases=aliases_of(session, model),
    )


def version_view(session: Session, model: ModelRow, row: ModelVersionRow) -> ModelVersionView:
    aliases = [
        alias for alias, number in aliases_of(session, model).items() if number == row.number
    ]
    conversion = row.conversion
    return ModelVersionView(
        name=model.name,
        version=row.number,
        tenant=model.tenant,
        format=row.format,
        artifact="directory" if row.artifact == "directory" else "file",
        filename=row.filename,
        sha256=row.sha256,
        size=row.size,
        signature=SignatureView.model_validate(row.signature),
        metrics=dict(row.metrics),
        description=row.description,
        tags=dict(row.tags),
        from_job=row.from_job,
        dataset=row.dataset,
        conversion=None if conversion is None else ConversionView.model_validate(conversion),
        aliases=aliases,
        created_at=row.created_at,
        created_by=row.created_by,
    )
