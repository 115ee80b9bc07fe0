"""``aios model package --docker``: a Docker build context whose container runs
``aios serve`` on one model version.

The context holds everything the image needs and nothing from this repository's git:

- ``Dockerfile``: ``python:3.11-slim``, a non-root user, the model, ``EXPOSE``, a
  ``HEALTHCHECK`` on ``/v2/health/ready`` and ``CMD ["aios", "serve", "--model", …]``;
- ``requirements.txt``: what the server needs for this format, pinned to the versions
  installed here (:mod:`aios.packaging.requirements`);
- ``aios-<version>-py3-none-any.whl``: the aios package as installed here
  (:mod:`aios.packaging.wheel`);
- ``model/<artifact>``: the model file (or directory) itself.

The server's arguments are relative to the image's working directory, so the same CMD
serves the model when run from the context's directory on this machine.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from aios.packaging.model import ModelArtifact
from aios.packaging.requirements import pinned_requirements
from aios.packaging.target import staged_directory
from aios.packaging.wheel import write_wheel

__all__ = [
    "BASE_IMAGE",
    "CONTAINER_PORT",
    "HEALTH_PATH",
    "USER_ID",
    "WORKDIR",
    "DockerContext",
    "serve_command",
    "write_docker_context",
]

BASE_IMAGE = "python:3.11-slim"
"""The image's base: the Python this project is tested on, without a compiler."""
CONTAINER_PORT = 8080
"""The port the server listens on inside the container (KServe's default)."""
HEALTH_PATH = "/v2/health/ready"
WORKDIR = "/app"
USER_ID = 10001
"""A numeric uid, so Kubernetes' ``runAsNonRoot`` can check it without /etc/passwd."""
MODEL_DIR = "model"


@dataclass(frozen=True, slots=True)
class DockerContext:
    """A written build context: its directory, the files in it, and the server command
    the image runs."""

    directory: Path
    dockerfile: Path
    requirements: Path
    wheel: Path
    artifact: Path
    command: tuple[str, ...]


def serve_command(model: ModelArtifact, *, port: int = CONTAINER_PORT) -> tuple[str, ...]:
    """The container's CMD: ``aios serve`` on ``model`` (its artifact under ``model/``,
    relative to the working directory) on every interface at ``port``."""
    artifact = f"{MODEL_DIR}/{model.path.name}"
    return (
        "aios",
        "serve",
        "--model",
        model.serve_argument(artifact),
        "--host",
        "0.0.0.0",  # inside a container the published port reaches only this interface
        "--port",
        str(port),
    )


def write_docker_context(
    model: ModelArtifact,
    destination: Path,
    *,
    force: bool = False,
    base_image: str = BASE_IMAGE,
    port: int = CONTAINER_PORT,
) -> DockerContext:
    """Writes the build context for ``model`` into ``destination`` and returns it.

    Raises InvalidInput when ``destination`` is a non-empty directory and ``force`` is
    false, or when a package the format needs is not installed here; nothing is written
    then (see :func:`~aios.packaging.target.staged_directory`).
    """
    requirements = pinned_requirements(model.format)
    command = serve_command(model, port=port)
    with staged_directory(destination, force=force) as staging:
        (staging / MODEL_DIR).mkdir()
        if model.path.is_dir():
            shutil.copytree(model.path, staging / MODEL_DIR / model.path.name)
        else:
            shutil.copy2(model.path, staging / MODEL_DIR / model.path.name)
        (staging / "requirements.txt").write_text(_requirements_text(model, requirements))
        wheel = write_wheel(staging)
        dockerfile = dockerfile_text(
            model,
            wheel_name=wheel.name,
            command=command,
            base_image=base_image,
            port=port,
            sha256=model.sha256(),
        )
        (staging / "Dockerfile").write_text(dockerfile)
        (staging / ".dockerignore").write_text("**/__pycache__\n")
    return DockerContext(
        directory=destination,
        dockerfile=destination / "Dockerfile",
        requirements=destination / "requirements.txt",
        wheel=destination / wheel.name,
        artifact=destination / MODEL_DIR / model.path.name,
        command=command,
    )


def dockerfile_text(
    model: ModelArtifact,
    *,
    wheel_name: str,
    command: tuple[str, ...],
    base_image: str,
    port: int,
    sha256: str,
) -> str:
    """The Dockerfile of the context; exec-form (JSON) CMD and HEALTHCHECK, so no shell
    sits between the container's signals and the server (a graceful drain on SIGTERM)."""
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{port}{HEALTH_PATH}', "
        "timeout=2).status == 200 else 1)"
    )
    labels = {
        "org.opencontainers.image.title": f"aios model {model.label}",
        "ai.aios.model.name": model.name,
        "ai.aios.model.version": str(model.version),
        "ai.aios.model.format": model.format,
        "ai.aios.model.sha256": sha256,
    }
    label_lines = " \\\n      ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
    return f"""\
# Serves {model.label} ({model.format}) with the KServe V2 protocol on port {port}.
# Written by `aios model package --docker`; build with `docker build -t IMAGE .`
FROM {base_image}

LABEL {label_lines}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid {USER_ID} --user-group aios

WORKDIR {WORKDIR}

COPY requirements.txt {wheel_name} ./
RUN pip install --no-cache-dir -r requirements.txt ./{wheel_name} && rm {wheel_name}

COPY {MODEL_DIR}/ ./{MODEL_DIR}/

USER {USER_ID}:{USER_ID}

EXPOSE {port}

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\
    CMD {json.dumps(["python", "-c", probe])}

CMD {json.dumps(list(command))}
"""


def _requirements_text(model: ModelArtifact, requirements: list[str]) -> str:
    header = (
        f"# What `aios serve` needs for a {model.format} model, pinned to the versions it\n"
        "# was tested with (written by `aios model package --docker`).\n"
    )
    return header + "\n".join(requirements) + "\n"
