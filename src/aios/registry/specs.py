"""What the model registry's REST API accepts and returns: pydantic models at the edge.

Requests forbid unknown fields and check every name, so a bad registration is refused
with a message naming the field before any byte reaches the blob store. This module
imports nothing of the server, so the SDK can use it alone.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

from aios.errors import Conflict, InvalidInput
from aios.registry.refs import ALIAS, DATASET, NAME
from aios.schema import Strict

__all__ = [
    "FORMATS",
    "RESERVED_PREFIX",
    "AliasSpec",
    "ArtifactKind",
    "ConversionView",
    "ModelFormat",
    "ModelVersionView",
    "ModelView",
    "RegisterSpec",
    "SignatureView",
    "TensorView",
    "VersionUpdate",
    "check_filename",
    "check_reference",
    "check_text",
    "is_reserved",
    "name_unavailable",
]

FORMATS = ("onnx", "sklearn", "torchscript", "python")
MAX_FILENAME = 255
MAX_VERSION = 2**31 - 1
"""The largest version number, and job id (``from_job``), a row can hold: both are
32-bit integers on PostgreSQL, where a larger one in a query is an error."""

ModelFormat = Literal["onnx", "sklearn", "torchscript", "python"]
ArtifactKind = Literal["file", "directory"]
Name = Annotated[str, Field(pattern=NAME, description="letters, digits, '_', '.', '-'")]
Alias = Annotated[str, Field(pattern=NAME, description="a name that is not a number or latest")]


def check_text(value: str) -> str:
    """``value`` when a text column can hold it (ValueError else): PostgreSQL's cannot
    hold NUL, so it is refused on every database alike."""
    if "\0" in value:
        raise ValueError("contains a NUL byte")
    return value


RESERVED_PREFIX = "aios-"
"""New model and deployment names that begin so are kept for the system's own, as
Kubernetes keeps ``kube-``."""


def name_unavailable(kind: str, name: str) -> Conflict:
    """The one refusal of a new ``kind`` name (``model``, ``deployment``) that the caller
    may not take, whatever the reason: reserved, or held by another tenant. Word for
    word the same for both, so that it tells a tenant nothing of what others hold
    beyond what a global name cannot hide (see :mod:`aios.registry.service`)."""
    return Conflict(f"{kind} name {name!r} is not available; choose another")


def is_reserved(name: str) -> bool:
    return name.lower().startswith(RESERVED_PREFIX)


def check_reference(ref: str) -> str:
    """``ref`` (what follows ``NAME@``) unless it is a version number past
    :data:`MAX_VERSION`, which no version has (ValueError naming it)."""
    if ref.isdigit() and int(ref) > MAX_VERSION:
        raise ValueError(f"version {ref} is past the largest version number ({MAX_VERSION})")
    return ref


TagValue = Annotated[str, Field(max_length=256), AfterValidator(check_text)]
Description = Annotated[str, Field(max_length=4096), AfterValidator(check_text)]


def check_filename(name: str, field: str = "filename") -> str:
    """Returns ``name`` when it can name a file in one directory; raises InvalidInput
    naming ``field`` otherwise (a path, ``..``, a control character)."""
    if (
        not name
        or len(name) > MAX_FILENAME
        or name in {".", ".."}
        or "/" in name
        or "\\" in name
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise InvalidInput(f"{field}: {name!r} cannot name a file (no '/', '..' or control chars)")
    return name


class RegisterSpec(Strict):
    """A new version of a model: what the artifact is, and where it came from.

    ``artifact`` says whether the upload is one file or a tar archive of a directory;
    ``filename`` is the file's (or the directory's) name, which a loader may depend on
    (``model.py``). ``from_job`` must be a job the caller can see. ``to_onnx`` converts
    a scikit-learn model with skl2onnx and stores the ONNX model as the version.
    """

    format: ModelFormat
    artifact: ArtifactKind = "file"
    filename: str | None = None
    from_job: int | None = Field(None, ge=1, le=MAX_VERSION)
    dataset: str | None = Field(None, pattern=DATASET, description="NAME@VERSION")
    metrics: dict[Name, float] = Field(default_factory=dict, max_length=256)
    tags: dict[Name, TagValue] = Field(default_factory=dict, max_length=64)
    description: Description = ""
    alias: Alias | None = None
    to_onnx: bool = False
    tenant: Name | None = None

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_filename(value)
        except InvalidInput as exc:
            raise ValueError(str(exc).removeprefix("filename: ")) from None

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(ALIAS, value):
            raise ValueError(f"{value!r} is a version reference, not an alias name")
        return value

    @field_validator("metrics")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        for key, number in value.items():
            if not math.isfinite(number):
                raise ValueError(f"metric {key!r} is {number}, not a finite number")
        return value


class VersionUpdate(Strict):
    """Changes to a version: a new description, and tags merged in (a tag set to null
    is removed), as a JSON merge patch."""

    description: Description | None = None
    tags: dict[Name, TagValue | None] | None = Field(None, max_length=64)


class AliasSpec(Strict):
    version: int = Field(ge=1, le=MAX_VERSION)


class TensorView(BaseModel):
    """One input or output: its name, V2 datatype (``FP32``…) and shape (-1: any)."""

    name: str
    datatype: str
    shape: list[int]


class SignatureView(BaseModel):
    inputs: list[TensorView]
    outputs: list[TensorView]


class ConversionView(BaseModel):
    """How a version was converted at registration, and how closely it agrees with
    the original on a sample."""

    source_format: str
    source_sha256: str
    max_difference: float
    tolerance: float
    rows: int
    converter: str


class ModelVersionView(BaseModel):
    name: str
    version: int
    tenant: str
    format: str
    artifact: ArtifactKind
    filename: str
    sha256: str
    size: int
    signature: SignatureView
    metrics: dict[str, float]
    description: str
    tags: dict[str, str]
    from_job: int | None
    dataset: str | None
    conversion: ConversionView | None
    aliases: list[str]
    created_at: float
    created_by: str


class ModelView(BaseModel):
    name: str
    tenant: str
    owner: str
    created_at: float
    latest: int | None
    versions: int
    aliases: dict[str, int]
