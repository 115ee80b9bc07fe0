"""OCI images as the root of a sandbox: found in files, unpacked once per digest.

An image reference is a path on this machine, optionally with ``:TAG``: an OCI image
layout directory (``oci-layout``, ``index.json``, ``blobs/``), or an archive of one
(``podman save --format oci-archive``, and what ``docker save`` writes since Docker 25),
or a Docker archive (``manifest.json`` beside the layers: ``docker save``,
``podman save``). No registry is reachable here, so images come from files; pulling
``registry/name:tag`` is the same path with a fetch step first (the manifest and blobs
downloaded into a layout directory, then :meth:`ImageCache.prepare` as here).

:meth:`ImageCache.prepare` reads the manifest, and unless that digest is unpacked
already, applies the layers in order into a temporary directory (whiteouts included)
and renames it into place, so a reader sees a whole root or none; the root is then
shared read-only by every sandbox that runs the image. Unpacking treats the image as
untrusted: every path stays inside the root (a member that would write through a
symlink, or a link to outside it, is refused), device nodes and FIFOs are skipped (a
block device in an image would be the host's disk), set-uid and set-gid bits are
dropped, and everything belongs to the unpacking user.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import zstandard

from aios.errors import InvalidInput

__all__ = ["Image", "ImageCache", "parse_reference", "readable_by"]

_INDEX = "application/vnd.oci.image.index.v1+json"
_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_REF_NAME = "org.opencontainers.image.ref.name"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


@dataclass(frozen=True, slots=True)
class Image:
    """An unpacked image: its digest, its root directory and the environment its
    configuration sets."""

    digest: str
    rootfs: Path
    env: dict[str, str] = field(default_factory=dict)


def parse_reference(reference: str) -> tuple[Path, str | None]:
    """The file or directory and the tag that ``reference`` names (``PATH`` or
    ``PATH:TAG``; a path that exists as written has no tag)."""
    path = Path(reference).expanduser()
    if path.exists() or ":" not in reference:
        return path, None
    base, _, tag = reference.rpartition(":")
    if not tag or "/" in tag:
        return path, None
    return Path(base).expanduser(), tag


def readable_by(path: Path, uid: int) -> bool:
    """Whether the user ``uid`` (its group of the same number, no others) could read
    ``path`` itself: every directory above it searchable and the path readable, by the
    permission bits. The control plane, as root, reads an image on a tenant's behalf
    only where the tenant could have read it."""
    path = path.absolute()
    for parent in reversed(path.parents):
        if not _allows(parent, uid, 0o1):
            return False
    return _allows(path, uid, 0o5 if path.is_dir() else 0o4)


def _allows(path: Path, uid: int, wanted: int) -> bool:
    try:
        status = path.stat()
    except OSError:
        return False
    if status.st_uid == uid:
        bits = (status.st_mode >> 6) & 0o7
    elif status.st_gid == uid:
        bits = (status.st_mode >> 3) & 0o7
    else:
        bits = status.st_mode & 0o7
    return bits & wanted == wanted


class ImageCache:
    """Unpacked images under ``root`` (``<digest>/rootfs`` and ``<digest>/env.json``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def prepare(self, reference: str) -> Image:
        """The unpacked image ``reference`` names, unpacking it when its digest is not
        here yet. Raises InvalidInput naming what is wrong with the reference or the
        image (missing, not an image, no such tag, a layer that escapes its root)."""
        path, tag = parse_reference(reference)
        if not path.exists():
            raise InvalidInput(f"image {reference}: no such file or directory")
        with _Source.open(path) as source:
            digest, manifest = source.manifest(tag, reference)
            config = json.loads(source.config_of(manifest["config"]))
            env = _environment(config)
            home = self.root / digest.replace(":", "-")
            if (home / "rootfs").is_dir():
                return Image(digest, home / "rootfs", env)
            with self._lock:  # one unpacking at a time: a second caller finds it done
                if not (home / "rootfs").is_dir():
                    self._unpack(source, manifest["layers"], home, env, reference)
        return Image(digest, home / "rootfs", env)

    def _unpack(
        self,
        source: _Source,
        layers: list[dict[str, Any]],
        home: Path,
        env: dict[str, str],
        reference: str,
    ) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.root))
        try:
            rootfs = staging / "rootfs"
            rootfs.mkdir(mode=0o755)
            for number, layer in enumerate(layers, start=1):
                with source.layer(layer) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                    _apply(tar, rootfs, f"image {reference}: layer {number}")
            (staging / "env.json").write_text(json.dumps(env))
            staging.chmod(0o755)
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(home)  # a partial one from a crash
            staging.rename(home)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


class _Source:
    """An image layout in a directory, or in an archive (OCI or Docker)."""

    def __init__(self, directory: Path | None, archive: tarfile.TarFile | None) -> None:
        self.directory = directory
        self.archive = archive

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path) -> Iterator[_Source]:
        if path.is_dir():
            yield cls(path, None)
            return
        try:
            archive = tarfile.open(path, mode="r:*")  # noqa: SIM115 (closed below)
        except (tarfile.TarError, OSError) as exc:
            raise InvalidInput(f"image {path}: not an image archive ({exc})") from None
        with archive:
            yield cls(None, archive)

    def read(self, name: str) -> bytes:
        if self.directory is not None:
            target = self.directory / name
            if not target.resolve().is_relative_to(self.directory.resolve()):
                raise InvalidInput(f"image {self.directory}: {name} leaves the layout")
            try:
                return target.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"image {self.directory}: {name}: {exc.strerror}") from None
        assert self.archive is not None
        try:
            member = self.archive.extractfile(name)
        except KeyError:
            member = None
        if member is None:
            raise InvalidInput(f"image archive: no {name} in it")
        with member:
            return member.read()

    def has(self, name: str) -> bool:
        if self.directory is not None:
            return (self.directory / name).is_file()
        assert self.archive is not None
        try:
            self.archive.getmember(name)
        except KeyError:
            return False
        return True

    def blob(self, descriptor: dict[str, Any]) -> bytes:
        digest = str(descriptor["digest"])
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or not hexdigest.isalnum():
            raise InvalidInput(f"image: unsupported digest {digest!r}")
        data = self.read(f"blobs/sha256/{hexdigest}")
        if hashlib.sha256(data).hexdigest() != hexdigest:
            raise InvalidInput(f"image: blob {digest} does not match its digest")
        return data

    def manifest(self, tag: str | None, reference: str) -> tuple[str, dict[str, Any]]:
        """The image's digest and its manifest (OCI form: ``config`` and ``layers``
        descriptors, or for a Docker archive, names of files in it)."""
        try:
            if self.has("index.json"):
                return self._oci(tag, reference)
            if self.has("manifest.json"):
                return self._docker(tag, reference)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"image {reference}: malformed ({exc})") from None
        raise InvalidInput(
            f"image {reference}: neither an OCI layout (index.json) nor a Docker archive "
            "(manifest.json)"
        )

    def _oci(self, tag: str | None, reference: str) -> tuple[str, dict[str, Any]]:
        index = json.loads(self.read("index.json"))
        candidates = index.get("manifests") or []
        if tag is not None:
            candidates = [m for m in candidates if m.get("annotations", {}).get(_REF_NAME) == tag]
        if not candidates:
            raise InvalidInput(f"image {reference}: no image tagged {tag!r} in it")
        descriptor = candidates[0]
        while descriptor.get("mediaType") in (_INDEX, _DOCKER_LIST):
            descriptor = _this_platform(json.loads(self.blob(descriptor)), reference)
        return str(descriptor["digest"]), json.loads(self.blob(descriptor))

    def _docker(self, tag: str | None, reference: str) -> tuple[str, dict[str, Any]]:
        entries = json.loads(self.read("manifest.json"))
        if tag is not None:
            entries = [
                e for e in entries if any(t.endswith(f":{tag}") for t in e.get("RepoTags") or [])
            ]
        if not entries:
            raise InvalidInput(f"image {reference}: no image tagged {tag!r} in it")
        entry = entries[0]
        config = self.read(entry["Config"])
        manifest = {
            "config": {"file": entry["Config"]},
            "layers": [{"file": name} for name in entry["Layers"]],
        }
        return "sha256:" + hashlib.sha256(config).hexdigest(), manifest

    def config_of(self, descriptor: dict[str, Any]) -> bytes:
        return self.read(descriptor["file"]) if "file" in descriptor else self.blob(descriptor)

    @contextlib.contextmanager
    def layer(self, descriptor: dict[str, Any]) -> Iterator[IO[bytes]]:
        """The layer's tar stream, uncompressed (gzip and zstd are recognised by their
        first bytes, whatever the media type says)."""
        data = self.read(descriptor["file"]) if "file" in descriptor else self.blob(descriptor)
        if data[:2] == b"\x1f\x8b":
            yield io.BytesIO(gzip.decompress(data))
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
                yield io.BytesIO(reader.read())
        else:
            yield io.BytesIO(data)


def _this_platform(index: dict[str, Any], reference: str) -> dict[str, Any]:
    machine = _ARCHITECTURES.get(os.uname().machine, os.uname().machine)
    for descriptor in index.get("manifests") or []:
        platform = descriptor.get("platform") or {}
        if platform.get("os", "linux") == "linux" and platform.get("architecture") == machine:
            return dict(descriptor)
    raise InvalidInput(f"image {reference}: no image for linux/{machine} in it")


def _environment(config: dict[str, Any]) -> dict[str, str]:
    env = {}
    for item in (config.get("config") or {}).get("Env") or []:
        key, sep, value = str(item).partition("=")
        if sep and key:
            env[key] = value
    return env


def _apply(tar: tarfile.TarFile, rootfs: Path, where: str) -> None:
    """Applies one layer's members to ``rootfs``: whiteouts remove what lower layers
    put there, everything else is written, never outside ``rootfs``."""
    for member in tar:
        relative = _member_path(member.name, where)
        if relative is None:
            continue
        name = relative.name
        parent = rootfs.joinpath(*relative.parent.parts)
        _check_inside(rootfs, parent, where, member.name)
        if name == _OPAQUE:
            if parent.is_dir():
                for child in list(parent.iterdir()):
                    _remove(child)
            continue
        if name.startswith(_WHITEOUT):
            _remove(parent / name[len(_WHITEOUT) :])
            continue
        target = parent / name
        _write(tar, member, rootfs, target, where)


def _member_path(name: str, where: str) -> PurePosixPath | None:
    while name.startswith("./"):
        name = name[2:]
    path = PurePosixPath("/" + name.lstrip("/"))
    if ".." in path.parts:
        raise InvalidInput(f"{where}: {name!r} leaves the image's root")
    relative = path.relative_to("/")
    return None if str(relative) in ("", ".") else relative


def _check_inside(rootfs: Path, directory: Path, where: str, name: str) -> None:
    """Refuses a path whose directories are not plain directories of ``rootfs``: a
    symlink among them would take a write elsewhere."""
    current = rootfs
    for part in directory.relative_to(rootfs).parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            current.mkdir(mode=0o755)
            continue
        if not stat.S_ISDIR(mode):
            raise InvalidInput(f"{where}: {name!r} would be written through a link or a file")


def _remove(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def _write(
    tar: tarfile.TarFile, member: tarfile.TarInfo, rootfs: Path, target: Path, where: str
) -> None:
    mode = member.mode & 0o1777  # no set-uid, no set-gid
    if member.isdir():
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            _remove(target)
        target.mkdir(mode=0o755, exist_ok=True)
        target.chmod(mode | 0o700)
        return
    _remove(target)
    if member.isfile():
        source = tar.extractfile(member)
        assert source is not None
        with source, open(target, "xb") as out:
            shutil.copyfileobj(source, out)
        target.chmod(mode)
    elif member.issym():
        os.symlink(member.linkname, target)  # read inside the sandbox's root: harmless
    elif member.islnk():
        linked = _member_path(member.linkname, where)
        if linked is None:
            raise InvalidInput(f"{where}: hard link {member.name!r} to the root")
        source_path = rootfs.joinpath(*linked.parts)
        _check_inside(rootfs, source_path.parent, where, member.linkname)
        if source_path.is_symlink() or not source_path.is_file():
            raise InvalidInput(f"{where}: hard link {member.name!r} to no file of the image")
        os.link(source_path, target)
    # Devices, FIFOs and anything else are skipped: a device node would be the host's.
