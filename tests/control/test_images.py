"""Jobs in OCI images through the control plane: the image's root, not the host's; an
image that is no image refused at submission; a tenant names only images it could read."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aios.client import ApiError
from aios.control.specs import PipelineSpec
from tests.control.control_harness import Running, start_plane, stop_plane
from tests.executors.oci import OS_RELEASE, docker_archive, oci_layout, static_busybox


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Running]:
    static_busybox()
    running = start_plane(tmp_path / "home")
    if running.plane.sandbox is None:
        stop_plane(running)
        pytest.skip("no sandbox on this machine (bubblewrap is not installed)")
    try:
        yield running
    finally:
        stop_plane(running)


@pytest.fixture
def images() -> Iterator[Path]:
    """A directory any user may read, for the test's images (pytest's own temporary
    directory is its user's alone)."""
    where = Path(tempfile.mkdtemp(prefix="aios-images-"))
    where.chmod(0o755)
    try:
        yield where
    finally:
        shutil.rmtree(where)


def test_a_job_in_an_image_sees_the_images_root_not_the_hosts(plane: Running, images: Path) -> None:
    layout = oci_layout(images / "busybox")
    job = plane.admin.submit(
        "cat /etc/os-release; echo dir=$PWD; ls /; id -u > mine", image=str(layout), memory="64M"
    )
    done = plane.admin.wait(job.id, timeout=60)
    out = "".join(plane.admin.logs(job.id))
    assert done.state == "succeeded", (done.message, out)
    assert out.startswith(OS_RELEASE)
    assert Path("/etc/os-release").read_text() not in out
    assert "dir=/job" in out  # the job's directory, where an image has room for it
    assert "usr" not in out.split()  # the busybox image has no /usr; the host has one
    assert (plane.home / "jobs" / str(job.id) / "mine").read_text().strip() != "0"


def test_a_docker_archive_runs_alike_and_a_pipeline_step_names_one(
    plane: Running, images: Path
) -> None:
    archive = docker_archive(images / "busybox.tar")
    spec = PipelineSpec.model_validate(
        {
            "name": "in-an-image",
            "steps": {
                "first": {"command": "cat /etc/os-release", "image": str(archive)},
                "second": {"command": ["true"], "needs": ["first"]},
            },
        }
    )
    done = plane.admin.wait_pipeline(plane.admin.submit_pipeline(spec).id, timeout=60)
    assert done.state == "succeeded"
    assert "".join(plane.admin.logs(done.steps["first"].id)) == OS_RELEASE


def test_what_is_no_image_is_refused_at_submission(plane: Running, tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    for image, named in ((not_an_image, "not an image archive"), (tmp_path / "nope", "no such")):
        with pytest.raises(ApiError) as refused:
            plane.admin.submit("true", image=str(image))
        assert refused.value.status == 400
        assert named in str(refused.value)
    assert plane.admin.jobs() == []


def test_a_tenant_names_only_an_image_its_own_user_could_read(
    plane: Running, tmp_path: Path, images: Path
) -> None:
    """As root, the control plane reads an image on a tenant's behalf only where the
    tenant's uid could: another's private image answers as if it did not exist."""
    if os.geteuid() != 0:
        pytest.skip("tenants have uids of their own only under a root control plane")
    plane.admin.create_queue("alpha")
    alpha = plane.client(plane.admin.create_token("alice", tenant="alpha"))
    private = oci_layout(tmp_path / "private")  # under pytest's directory: root's alone
    public = oci_layout(images / "public")
    with pytest.raises(ApiError) as refused:
        alpha.submit("true", image=str(private), memory="64M")
    assert "no such file or directory" in str(refused.value)
    job = alpha.submit("cat /etc/os-release", image=str(public), memory="64M")
    assert alpha.wait(job.id, timeout=60).state == "succeeded"
    alpha.close()
