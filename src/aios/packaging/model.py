"""The model version being packaged, as packaging sees it: a name, a version, a format
and the artifact on local disk.

Packaging works on local paths so that it needs no registry: the CLI downloads a
registered version first and hands the file over; a test or a script can hand over any
artifact it built itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard, get_args

from aios.errors import InvalidInput
from aios.serving.runtimes.base import ModelFormat

__all__ = ["FORMATS", "ModelArtifact", "model_format"]

FORMATS: tuple[ModelFormat, ...] = get_args(ModelFormat)
"""The model formats the server's runtimes load."""


def model_format(text: str) -> ModelFormat:
    """``text`` as a model format; InvalidInput naming it and the known ones if unknown."""
    if not _is_format(text):
        raise InvalidInput(f"unknown model format {text!r} (known: {', '.join(FORMATS)})")
    return text


def _is_format(text: str) -> TypeGuard[ModelFormat]:
    return text in FORMATS


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A Kubernetes object name is a DNS-1123 label: lower case, digits and '-', 63 at most.
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_DNS_LABEL_MAX = 63


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """One model version: ``name`` and ``version`` as the registry knows them, the
    ``format`` a runtime loads it with, and ``path``, its file (or directory) here."""

    name: str
    version: int
    format: ModelFormat
    path: Path

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise InvalidInput(
                f"model name {self.name!r}: use letters, digits, '.', '_' and '-' only"
            )
        if self.version < 1:
            raise InvalidInput(f"model version must be 1 or more, got {self.version}")
        model_format(self.format)  # a value from outside the type checker's sight
        if not self.path.exists():
            raise InvalidInput(f"model artifact {self.path} does not exist")

    @property
    def label(self) -> str:
        """``NAME@VERSION``, as the CLI names a model version."""
        return f"{self.name}@{self.version}"

    @property
    def slug(self) -> str:
        """The name as lower-case letters, digits and '-' (what Kubernetes object names
        and image names allow)."""
        return _NOT_DNS.sub("-", self.name.lower()).strip("-") or "model"

    @property
    def resource_name(self) -> str:
        """A Kubernetes object name for this version: ``<slug>-v<version>``, 63 at most."""
        suffix = f"-v{self.version}"
        return self.slug[: _DNS_LABEL_MAX - len(suffix)].rstrip("-") + suffix

    @property
    def image(self) -> str:
        """The image reference to build the container as when none is given:
        ``aios-<slug>:<version>``."""
        return f"aios-{self.slug}:{self.version}"

    def serve_argument(self, artifact_path: str) -> str:
        """The value of ``aios serve --model`` for this version with its artifact at
        ``artifact_path``: ``NAME:VERSION=FORMAT:PATH``."""
        return f"{self.name}:{self.version}={self.format}:{artifact_path}"

    def sha256(self) -> str:
        """The hex sha256 of the artifact (of every file, in path order, for a directory)."""
        digest = hashlib.sha256()
        is_dir = self.path.is_dir()
        files = sorted(p for p in self.path.rglob("*") if p.is_file()) if is_dir else [self.path]
        for file in files:
            if is_dir:
                digest.update(file.relative_to(self.path).as_posix().encode() + b"\0")
            with file.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()
