"""``aios data share|unshare|own|shares``: the owner's members share a dataset, admins
assign one; a refusal is one line on stderr and exit code 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from aios.cli.main import app
from aios.data.backend import LocalBackend
from aios.data.datasets import DataStore
from aios.data.repository import Repository
from tests.cli.cli_harness import Cluster, one_error_line


@pytest.fixture(scope="module")
def tokens(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Queues alpha and beta with a member each, and ``digits`` in the plane's
    repository, added with the library (no one's yet)."""
    source = tmp_path_factory.mktemp("digits")
    (source / "train.csv").write_text("x,label\n1,0\n")
    with Repository.init(LocalBackend(cluster.home / "data"), None, encrypted=False) as repo:
        DataStore(repo).add("digits", source, "first")
    for queue in ("alpha", "beta"):
        cluster.admin.create_queue(queue)
    return {
        "alpha": cluster.admin.create_token("ada", tenant="alpha"),
        "beta": cluster.admin.create_token("bob", tenant="beta"),
    }


def as_member(cluster: Cluster, token: str, *args: str) -> Result:
    return CliRunner(env={**cluster.env(), "AIOS_TOKEN": token}).invoke(app, list(args))


def test_an_admin_assigns_the_owner_shares_and_unshares(
    cluster: Cluster, tokens: dict[str, str]
) -> None:
    owned = cluster.aios("data", "own", "digits", "--queue", "alpha")
    assert owned.exit_code == 0, owned.output
    assert owned.stdout == "dataset digits: owner alpha\n"

    shared = as_member(
        cluster, tokens["alpha"], "data", "share", "digits", "--with", "beta", "--read-only"
    )
    assert shared.exit_code == 0, shared.output
    assert shared.stdout == "dataset digits: owner alpha\n  shared with beta (read-only)\n"
    listed = as_member(cluster, tokens["alpha"], "data", "shares", "digits")
    assert listed.stdout == shared.stdout

    unshared = as_member(cluster, tokens["alpha"], "data", "unshare", "digits", "--with", "beta")
    assert unshared.exit_code == 0, unshared.output
    assert unshared.stdout == "dataset digits: owner alpha\n"


@pytest.mark.parametrize(
    ("who", "args", "message"),
    [
        ("beta", ["own", "digits", "--queue", "beta"], "only an admin may assign"),
        ("beta", ["share", "digits", "--with", "beta"], "no dataset 'digits'"),
        ("beta", ["shares", "digits"], "no dataset 'digits'"),
        ("alpha", ["share", "digits", "--with", "nosuch"], "queue: no queue named 'nosuch'"),
        ("alpha", ["unshare", "digits", "--with", "beta"], "is not shared with queue 'beta'"),
        ("alpha", ["share", "nosuch", "--with", "beta"], "no dataset 'nosuch'"),
        ("alpha", ["share", "../up", "--with", "beta"], "up"),
    ],
)
def test_a_refusal_is_one_line_and_exit_code_2(
    cluster: Cluster, tokens: dict[str, str], who: str, args: list[str], message: str
) -> None:
    cluster.aios("data", "own", "digits", "--queue", "alpha")
    result = as_member(cluster, tokens[who], "data", *args)
    assert result.exit_code == 2, result.output
    assert message in one_error_line(result)
    assert result.stdout == ""


def test_a_command_without_its_queue_is_a_usage_error(cluster: Cluster) -> None:
    result = cluster.aios("data", "share", "digits")
    assert result.exit_code == 2
    assert "--with" in result.stderr


def test_the_commands_are_listed_under_data(cluster: Cluster) -> None:
    result = cluster.aios("data", "--help")
    for command in ("share", "unshare", "own", "shares"):
        assert command in result.stdout
