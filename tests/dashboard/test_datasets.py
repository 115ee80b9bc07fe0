"""The Datasets page's routes with the tenant rules: a tenant lists and opens the
datasets its queue owns or has a share of, and another tenant's dataset answers as one
that does not exist; an admin sees every dataset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aios.data.backend import LocalBackend
from aios.data.datasets import DataStore
from aios.data.repository import Repository
from tests.control.control_harness import Running, start_plane, stop_plane
from tests.data.interference import append, interfere


@dataclass
class Plane:
    running: Running
    tokens: dict[str, str]

    def http(self, who: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=self.running.url + "/api/v1", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """Queues alpha and beta; ``digits`` (two versions, the first added while its file
    grew, so not complete) assigned to alpha, ``loose`` added with the library and no
    one's."""
    root = tmp_path_factory.mktemp("datasets")
    source = root / "source"
    source.mkdir()
    (source / "train.csv").write_text("x,label\n1,0\n")
    home = root / "home"
    with Repository.init(LocalBackend(home / "data"), None, encrypted=False) as repo:
        store = DataStore(repo)
        train = source / "train.csv"
        with (
            pytest.MonkeyPatch.context() as patch,
            interfere(patch, train, lambda: append(train, b"9,9\n")),
        ):
            store.add("digits", source, "first")
        store.add("loose", source, "by hand")
        (source / "train.csv").write_text("x,label\n1,0\n2,1\n")
        store.add("digits", source, "more rows")
    running = start_plane(home)
    admin = running.admin
    for queue in ("alpha", "beta"):
        admin.create_queue(queue)
    admin.assign_dataset("digits", "alpha")
    tokens = {
        "alpha": admin.create_token("ada", tenant="alpha"),
        "beta": admin.create_token("bob", tenant="beta"),
        "admin": Path(str(running.plane.admin_token_path)).read_text().strip(),
    }
    try:
        yield Plane(running, tokens)
    finally:
        stop_plane(running)


@pytest.mark.parametrize(
    ("who", "listed"),
    [("alpha", ["digits"]), ("beta", []), ("admin", ["digits", "loose"])],
)
def test_a_tenant_lists_the_datasets_its_queue_may_read(
    plane: Plane, who: str, listed: list[str]
) -> None:
    with plane.http(who) as api:
        assert [d["name"] for d in api.get("/datasets").json()] == listed


@pytest.mark.parametrize("path", ["/datasets/{}", "/datasets/{}/diff?a=1&b=2"])
def test_another_tenants_dataset_answers_as_one_that_does_not_exist(
    plane: Plane, path: str
) -> None:
    with plane.http("beta") as api:
        theirs = api.get(path.format("digits"))
        absent = api.get(path.format("nosuch"))
        loose = api.get(path.format("loose"))  # no one's: the admins' alone
    assert theirs.status_code == absent.status_code == loose.status_code == 404
    assert theirs.json()["detail"].replace("digits", "N") == absent.json()["detail"].replace(
        "nosuch", "N"
    )
    assert loose.json()["detail"] == "no dataset 'loose'"
    with plane.http("alpha") as api:
        assert api.get(path.format("digits")).status_code == 200
    with plane.http("admin") as api:
        assert api.get(path.format("loose").replace("b=2", "b=1")).status_code == 200


def test_a_share_shows_the_dataset_to_the_queue(plane: Plane) -> None:
    alpha = plane.running.client(plane.tokens["alpha"])
    alpha.share_dataset("digits", "beta", read_only=True)
    try:
        with plane.http("beta") as api:
            assert [d["name"] for d in api.get("/datasets").json()] == ["digits"]
            detail = api.get("/datasets/digits").json()
            assert [v["version"] for v in detail["versions"]] == [2, 1]
    finally:
        alpha.unshare_dataset("digits", "beta")
        alpha.close()
    with plane.http("beta") as api:
        assert api.get("/datasets").json() == []
        assert api.get("/datasets/digits").status_code == 404


def test_a_version_not_read_whole_is_marked_in_the_json(plane: Plane) -> None:
    """The dataset's versions say whether every file was read whole, and name those
    that changed while they were read."""
    with plane.http("admin") as api:
        versions = api.get("/datasets/digits").json()["versions"]
    marks = [(v["version"], v["complete"], v["changed"], v["vanished"]) for v in versions]
    assert marks == [(2, True, [], []), (1, False, ["train.csv"], [])]
