"""Hostile and malformed uploads, sent as raw HTTP: each is refused with a 4xx naming
the problem, and nothing lands outside the registry's staging area."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aios.control.perimeter import JSON_LIMIT
from tests.control.control_harness import Running
from tests.registry.artifacts import tar_with, write_onnx


@pytest.fixture
def http(plane: Running) -> Iterator[httpx.Client]:
    token = (plane.home / "admin.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=plane.url + "/api/v1", headers=headers) as client:
        yield client


def upload(
    http: httpx.Client, name: str, spec: dict[str, object] | str, artifact: bytes
) -> httpx.Response:
    text = spec if isinstance(spec, str) else json.dumps(spec)
    return http.post(
        f"/models/{name}/versions",
        data={"spec": text},
        files={"artifact": ("upload", artifact, "application/octet-stream")},
    )


def member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, 0o644
    return info


MODEL = b"class Model: pass\n"


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([(member("../evil.py"), MODEL)], "'../evil.py' escapes the directory"),
        ([(member("ok/../../evil.py"), MODEL)], "escapes the directory"),
        ([(member("/tmp/evil.py"), MODEL)], "'/tmp/evil.py' escapes the directory"),
        ([(member("link", tarfile.SYMTYPE, "/etc/passwd"), b"")], "'link' is not a regular file"),
        (
            [(member("model.py"), MODEL), (member("hard", tarfile.LNKTYPE, "model.py"), b"")],
            "'hard' is not a regular file",
        ),
        ([(member("dev", tarfile.CHRTYPE), b"")], "'dev' is not a regular file"),
        ([(member("model.py"), MODEL), (member("./model.py"), MODEL)], "appears twice"),
        (
            [(member("a"), MODEL), (member("a/b"), MODEL)],
            "'a/b' is under 'a', which is a file earlier",
        ),
        (
            [(member("a"), MODEL), (member("a", tarfile.DIRTYPE), b"")],
            "'a' is a directory and, earlier in the archive, a file",
        ),
        (
            [(member("a/b"), MODEL), (member("a/b/c/d"), MODEL)],
            "'a/b/c/d' is under 'a/b', which is a file",
        ),
        ([(member("a/b"), MODEL), (member("a"), MODEL)], "'a' is a directory too"),
        ([], "holds no files"),
    ],
)
def test_an_unsafe_archive_is_refused_whole(
    plane: Running, http: httpx.Client, members: list[tuple[tarfile.TarInfo, bytes]], reason: str
) -> None:
    """Members that would land outside the directory, links, devices and duplicates
    refuse the whole upload; nothing of it is written anywhere."""
    response = upload(
        http, "hostile", {"format": "python", "artifact": "directory"}, tar_with(members)
    )

    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert not (plane.home / "registry" / "evil.py").exists()
    assert not Path("/tmp/evil.py").exists()
    assert list((plane.home / "registry" / "tmp").iterdir()) == []
    assert http.get("/models/hostile").status_code == 404


def test_an_archive_that_is_not_one_is_refused(http: httpx.Client) -> None:
    response = upload(http, "hostile", {"format": "python", "artifact": "directory"}, b"x" * 600)

    assert response.status_code == 400
    assert "not a readable tar archive" in response.json()["detail"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    plane: Running, http: httpx.Client, tmp_path: Path
) -> None:
    """The Content-Length alone refuses a body over the limit (413), and a file that
    turns out larger than the limit is refused as it is copied."""
    registry = plane.plane.registry
    model = write_onnx(tmp_path / "m.onnx").read_bytes()
    limit = registry.max_upload
    registry.max_upload = 100
    try:
        too_big = upload(http, "big", {"format": "onnx"}, b"x" * (2 << 20))
        over = upload(http, "big", {"format": "onnx"}, model)
    finally:
        registry.max_upload = limit

    assert too_big.status_code == 413
    assert "over the limit of 100 bytes" in too_big.json()["detail"]
    assert over.status_code == 400
    assert over.json()["detail"] == "artifact: larger than the limit of 100 bytes"
    assert http.get("/models/big").status_code == 404


def test_a_body_without_a_length_is_refused(http: httpx.Client) -> None:
    response = http.post(
        "/models/chunked/versions",
        content=iter([b"--x\r\n"]),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )

    assert response.status_code == 411


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("{not json", "spec: Invalid JSON"),
        ({"format": "keras"}, "spec.format: Input should be"),
        ({"format": "onnx", "color": "red"}, "spec.color: Extra inputs are not permitted"),
        ({"format": "onnx", "metrics": {"acc": "high"}}, "spec.metrics.acc:"),
        ({"format": "onnx", "dataset": "iris"}, "spec.dataset: String should match pattern"),
        ({"format": "onnx", "filename": "../x.onnx"}, "spec.filename: '../x.onnx' cannot name"),
        ({"format": "onnx", "alias": "latest"}, "spec.alias: 'latest' is a version reference"),
        ({"format": "onnx", "tenant": "nowhere"}, "tenant: no queue named 'nowhere'"),
    ],
)
def test_a_malformed_spec_is_refused_naming_the_field(
    http: httpx.Client, spec: dict[str, object] | str, reason: str
) -> None:
    response = upload(http, "specs", spec, b"anything")

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(reason)


def test_a_form_without_its_parts_is_refused(http: httpx.Client) -> None:
    no_file = http.post("/models/parts/versions", data={"spec": '{"format": "onnx"}'})
    no_spec = http.post("/models/parts/versions", files={"artifact": ("m", b"x")})

    assert (no_file.status_code, no_spec.status_code) == (400, 400)
    assert no_file.json()["detail"].startswith("artifact: missing")
    assert no_spec.json()["detail"].startswith("spec: missing")


def test_a_bad_model_name_or_reference_in_the_path_is_refused(http: httpx.Client) -> None:
    assert http.get("/models/-bad").status_code == 422
    assert http.get("/models/ok/versions/0").status_code == 404
    assert http.get("/models/ok/versions/a@b").status_code == 422


def test_an_upload_larger_than_a_json_body_is_still_registered(
    plane: Running, tmp_path: Path
) -> None:
    """A registration has its own limit (the registry's), not the 16 MiB of a JSON
    body of the API."""
    model = write_onnx(tmp_path / "large.onnx", features=2100, outputs=2048)
    assert model.stat().st_size > JSON_LIMIT

    version = plane.admin.register_model("large", model, "onnx")

    assert (version.version, version.size) == (1, model.stat().st_size)
