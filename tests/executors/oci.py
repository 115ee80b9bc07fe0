"""Real OCI images for the tests, built from Debian's busybox-static: a root
filesystem with ``/bin/busybox`` and its applets as symlinks and an ``/etc/os-release``
of its own, packed as an OCI image layout (or a Docker archive), layer by layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "id", "ls", "echo", "env", "sleep", "touch", "test", "ps", "kill")
OS_RELEASE = 'NAME="AIOS test image"\nID=aios-test\nVERSION_ID="1"\n'

Member = Callable[[tarfile.TarFile], None]


def static_busybox() -> Path:
    """Debian's busybox-static (no dynamic loader: it runs in an image of its own);
    skips the test where it is not installed (``make test`` installs it)."""
    if not BUSYBOX.is_file() or b"ld-linux" in BUSYBOX.read_bytes()[:4096]:
        pytest.skip("no static /bin/busybox here (Debian's busybox-static)")
    return BUSYBOX


def busybox_layer() -> bytes:
    """A gzipped tar of a busybox root filesystem."""
    busybox = static_busybox().read_bytes()

    def members(tar: tarfile.TarFile) -> None:
        for directory in ("bin", "etc", "tmp"):
            add_directory(tar, directory)
        add_file(tar, "bin/busybox", busybox, 0o755)
        for applet in APPLETS:
            add_symlink(tar, f"bin/{applet}", "busybox")
        add_file(tar, "etc/os-release", OS_RELEASE.encode())
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")

    return layer(members)


def layer(members: Member) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        members(tar)
    return gzip.compress(buffer.getvalue(), mtime=0)


def add_directory(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def add_special(tar: tarfile.TarFile, name: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 8, 0  # /dev/sda on most machines
    info.mode = 0o666
    tar.addfile(info)


def _blob(directory: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (directory / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_layout(
    directory: Path,
    layers: Sequence[bytes] | None = None,
    *,
    tag: str = "latest",
    env: Sequence[str] = ("PATH=/bin",),
) -> Path:
    """Writes an OCI image layout of ``layers`` (default: busybox) into ``directory``."""
    layers = [busybox_layer()] if layers is None else list(layers)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    diff_ids = [f"sha256:{hashlib.sha256(gzip.decompress(data)).hexdigest()}" for data in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": list(env), "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_blob = _blob(directory, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_blob},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(directory, data)}
            for data in layers
        ],
    }
    manifest_blob = _blob(directory, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_blob,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    return directory


def docker_archive(path: Path, layers: Sequence[bytes] | None = None, tag: str = "latest") -> Path:
    """Writes a ``docker save`` archive (``manifest.json``, a config, uncompressed
    layers) of ``layers`` (default: busybox) to ``path``."""
    layers = [busybox_layer()] if layers is None else list(layers)
    staging = path.with_suffix(".staging")
    staging.mkdir()
    names = []
    for number, data in enumerate(layers):
        name = f"layer{number}/layer.tar"
        (staging / f"layer{number}").mkdir()
        (staging / name).write_bytes(gzip.decompress(data))
        names.append(name)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]}})
    config_name = f"{hashlib.sha256(config.encode()).hexdigest()}.json"
    (staging / config_name).write_text(config)
    manifest = [{"Config": config_name, "RepoTags": [f"busybox:{tag}"], "Layers": names}]
    (staging / "manifest.json").write_text(json.dumps(manifest))
    with tarfile.open(path, "w") as tar:
        for entry in sorted(staging.rglob("*")):
            tar.add(entry, arcname=str(entry.relative_to(staging)), recursive=False)
    shutil.rmtree(staging)
    return path
