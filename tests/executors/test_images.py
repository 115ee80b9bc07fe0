"""OCI images unpacked once per digest into a root a sandbox runs in: layouts and
archives, tags, whiteouts, and an untrusted image kept inside its root."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

from aios.errors import InvalidInput
from aios.executors.images import ImageCache, parse_reference
from tests.executors.oci import (
    OS_RELEASE,
    Member,
    add_directory,
    add_file,
    add_special,
    add_symlink,
    busybox_layer,
    docker_archive,
    layer,
    oci_layout,
)


def test_an_oci_layout_unpacks_into_a_root_with_its_files_and_environment(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "image")
    image = ImageCache(tmp_path / "cache").prepare(str(layout))
    assert (image.rootfs / "etc" / "os-release").read_text() == OS_RELEASE
    assert (image.rootfs / "bin" / "sh").is_symlink()
    assert os.readlink(image.rootfs / "bin" / "sh") == "busybox"
    assert image.env == {"PATH": "/bin"}
    assert image.digest.startswith("sha256:")


def test_an_image_is_unpacked_once_per_digest(tmp_path: Path) -> None:
    """A second prepare of the same image (by another path too) finds it unpacked."""
    cache = ImageCache(tmp_path / "cache")
    first = cache.prepare(str(oci_layout(tmp_path / "a")))
    marker = first.rootfs / "etc" / "os-release"
    before = marker.stat().st_ino
    second = cache.prepare(str(oci_layout(tmp_path / "b")))
    assert second == first
    assert marker.stat().st_ino == before
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.rootfs.parent.name]


def test_a_docker_archive_and_an_oci_archive_unpack_alike(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "cache")
    docker = cache.prepare(str(docker_archive(tmp_path / "busybox.tar")))
    assert (docker.rootfs / "etc" / "os-release").read_text() == OS_RELEASE
    layout = oci_layout(tmp_path / "layout")
    archive = tmp_path / "oci.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in sorted(layout.rglob("*")):
            tar.add(entry, arcname=str(entry.relative_to(layout)), recursive=False)
    oci = cache.prepare(str(archive))
    assert (oci.rootfs / "etc" / "os-release").read_text() == OS_RELEASE


def test_a_tag_picks_its_image_and_an_unknown_tag_is_named(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "image", tag="v1")
    cache = ImageCache(tmp_path / "cache")
    assert cache.prepare(f"{layout}:v1").rootfs.is_dir()
    with pytest.raises(InvalidInput, match="no image tagged 'v2'"):
        cache.prepare(f"{layout}:v2")
    assert parse_reference(f"{layout}:v1") == (layout, "v1")
    assert parse_reference(str(layout)) == (layout, None)


def test_whiteouts_remove_what_a_lower_layer_put_there(tmp_path: Path) -> None:
    def upper(tar: tarfile.TarFile) -> None:
        add_file(tar, "etc/.wh.passwd", b"")  # deletes /etc/passwd
        add_directory(tar, "tmp")
        add_file(tar, "tmp/.wh..wh..opq", b"")  # empties /tmp of the lower layer
        add_file(tar, "tmp/new", b"mine\n")

    def lower_tmp(tar: tarfile.TarFile) -> None:
        add_file(tar, "tmp/old", b"old\n")

    layout = oci_layout(tmp_path / "image", [busybox_layer(), layer(lower_tmp), layer(upper)])
    rootfs = ImageCache(tmp_path / "cache").prepare(str(layout)).rootfs
    assert not (rootfs / "etc" / "passwd").exists()
    assert (rootfs / "etc" / "os-release").exists()
    assert sorted(p.name for p in (rootfs / "tmp").iterdir()) == ["new"]


def _dot_dot(tar: tarfile.TarFile) -> None:
    add_file(tar, "../escape", b"x")


def _through_a_symlink(tar: tarfile.TarFile) -> None:
    add_symlink(tar, "etc", "/etc")
    add_file(tar, "etc/evil", b"x")


def _hard_link_out(tar: tarfile.TarFile) -> None:
    add_file(tar, "real", b"x")
    _hard_link(tar, "copy", "../../outside")


@pytest.mark.parametrize(
    ("members", "named"),
    [
        (_dot_dot, "leaves the image's root"),
        (_through_a_symlink, "through a link"),
        (_hard_link_out, "leaves the image's root"),
    ],
    ids=["dot-dot", "through-a-symlink", "hard-link-out"],
)
def test_a_layer_that_would_write_outside_its_root_is_refused(
    tmp_path: Path, members: Member, named: str
) -> None:
    """Nothing is written outside the root, and no half-unpacked root is left."""
    outside = tmp_path / "cache"
    layout = oci_layout(tmp_path / "image", [layer(members)])
    with pytest.raises(InvalidInput, match=named):
        ImageCache(outside).prepare(str(layout))
    assert not (tmp_path / "escape").exists()
    assert not Path("/etc/evil").exists()
    assert [p for p in outside.iterdir() if not p.name.startswith(".")] == []
    assert list(outside.iterdir()) == []


def test_devices_fifos_and_set_uid_bits_do_not_survive_unpacking(tmp_path: Path) -> None:
    """A block device in an image would be the host's disk inside the sandbox."""

    def members(tar: tarfile.TarFile) -> None:
        add_special(tar, "disk", tarfile.BLKTYPE)
        add_special(tar, "tty", tarfile.CHRTYPE)
        add_special(tar, "pipe", tarfile.FIFOTYPE)
        add_file(tar, "su", b"#!/bin/sh\n", 0o4755)

    rootfs = (
        ImageCache(tmp_path / "cache")
        .prepare(str(oci_layout(tmp_path / "image", [layer(members)])))
        .rootfs
    )
    assert sorted(p.name for p in rootfs.iterdir()) == ["su"]
    assert stat.S_IMODE((rootfs / "su").stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda path: None, "no such file or directory"),
        (lambda path: path.write_text("hello"), "not an image archive"),
        (lambda path: path.mkdir(), "neither an OCI layout"),
    ],
    ids=["missing", "not-a-tar", "empty-directory"],
)
def test_what_is_not_an_image_is_named_as_such(tmp_path: Path, make: object, named: str) -> None:
    path = tmp_path / "image"
    make(path)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=named):
        ImageCache(tmp_path / "cache").prepare(str(path))


def _hard_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    tar.addfile(info)
