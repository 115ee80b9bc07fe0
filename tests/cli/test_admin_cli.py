"""``aios queue …``, ``aios nodes``, ``aios token create`` and ``aios whoami`` against a
real control plane on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aios.cli.main import app
from tests.cli.cli_harness import Cluster, eventually, one_error_line, row_of


def as_user(cluster: Cluster, token: str, *args: str | int) -> Result:
    """Runs the CLI with ``AIOS_TOKEN``, as a user other than the admin."""
    env = {**cluster.env(), "AIOS_HOME": "/nonexistent", "AIOS_TOKEN": token}
    return CliRunner(env=env).invoke(app, [str(a) for a in args])


def test_queue_create_then_ls_shows_quota_against_usage(cluster: Cluster) -> None:
    created = cluster.aios(
        "queue", "create", "vision", "--quota", "cpu=8,memory=32G,gpu=2", "--weight", "2"
    )
    assert created.exit_code == 0, created.stderr
    assert created.stdout == "queue vision created\n"

    listed = cluster.aios("queue", "ls")

    assert listed.exit_code == 0, listed.stderr
    assert row_of(listed.stdout, "vision") == [
        "vision",
        "2",
        "",
        "0 / 8",
        "0 / 32.0Gi",
        "0 / 2",
        "",
        "0",
        "0",
    ]
    assert row_of(listed.stdout, "default")[3:6] == ["0 / ∞", "0 / ∞", "0 / ∞"]


def test_queue_ls_counts_a_running_job_in_usage(cluster: Cluster) -> None:
    assert cluster.aios("queue", "create", "busy", "--quota", "cpu=4").exit_code == 0
    job = cluster.admin.submit(["sleep", "60"], queue="busy", cpus=2, memory="1G")
    eventually(lambda: cluster.admin.get(job.id).state == "running", "running")

    row = row_of(cluster.aios("queue", "ls").stdout, "busy")

    assert row[3:6] == ["2 / 4", "1.0Gi / ∞", "0 / ∞"]
    assert row[7:] == ["0", "1"]
    cluster.admin.cancel(job.id)


def test_queue_set_changes_only_what_is_given(cluster: Cluster) -> None:
    assert cluster.aios("queue", "create", "audio", "--quota", "gpu=1").exit_code == 0

    changed = cluster.aios(
        "queue", "set", "audio", "--weight", "3", "--cohort", "shared", "--borrowing-limit", "gpu=2"
    )

    assert changed.exit_code == 0, changed.stderr
    queue = {q.name: q for q in cluster.admin.queues()}["audio"]
    assert (queue.quota, queue.weight, queue.cohort, queue.borrowing_limit) == (
        {"gpu": 1},
        3.0,
        "shared",
        {"gpu": 2},
    )
    assert (
        cluster.aios("queue", "set", "audio", "--quota", "none", "--cohort", "none").exit_code == 0
    )
    queue = {q.name: q for q in cluster.admin.queues()}["audio"]
    assert (queue.quota, queue.cohort) == (None, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["queue", "create", "default"], "queue 'default' already exists"),
        (["queue", "create", "bad name"], "name: "),
        (["queue", "create", "q1", "--quota", "cpu"], "--quota: expected RESOURCE=AMOUNT"),
        (["queue", "create", "q2", "--quota", "gpu=1.5"], "must be a whole"),
        (["queue", "create", "q3", "--weight", "0"], "weight: "),
        (["queue", "set", "nope", "--weight", "2"], "no queue 'nope'"),
        (["queue", "set", "default"], "give at least one"),
        (["token", "create", "bob"], "exactly one of --tenant QUEUE or --admin"),
        (["token", "create", "bob", "--tenant", "nope"], "tenant: no queue named 'nope'"),
    ],
)
def test_a_refused_change_is_one_line_and_exit_2(
    cluster: Cluster, args: list[str], message: str
) -> None:
    before = cluster.admin.queues()

    result = cluster.aios(*args)

    assert result.exit_code == 2
    assert message in one_error_line(result)
    assert cluster.admin.queues() == before


def test_nodes_shows_cores_memory_and_the_job_on_each_gpu(cluster: Cluster) -> None:
    job = cluster.admin.submit(["sleep", "60"], gpus=1, cpus=1, memory="1G")
    eventually(lambda: cluster.admin.get(job.id).state == "running", "running")

    result = cluster.aios("nodes")

    assert result.exit_code == 0, result.stderr
    first, second = (line for line in result.stdout.splitlines() if "T4" in line)
    node = first.split("│")[1:-1]
    assert node[0].strip() == "local"
    assert node[1].strip().startswith("1 / ")
    assert node[3].strip() == "1.0Gi / 8.0Gi"
    gpus = first + second
    assert f"job {job.id}" in gpus and "free" in gpus
    cluster.admin.cancel(job.id)


def test_a_tenant_token_sees_its_own_queue_only(cluster: Cluster) -> None:
    """A token made with --tenant works as AIOS_TOKEN, and the jobs of another queue are
    'not found' to it, as if they did not exist."""
    assert cluster.aios("queue", "create", "team-a").exit_code == 0
    made = cluster.aios("token", "create", "alice", "--tenant", "team-a")
    assert made.exit_code == 0, made.stderr
    token = made.stdout.strip()
    admins = cluster.admin.submit(["true"])

    assert as_user(cluster, token, "whoami").stdout == f"alice (tenant team-a) at {cluster.url}\n"
    hidden = as_user(cluster, token, "show", admins.id)
    assert hidden.exit_code == 2
    assert one_error_line(hidden) == f"no job {admins.id}"
    mine = as_user(cluster, token, "submit", "--", "true")
    assert mine.exit_code == 0, mine.stderr
    assert cluster.admin.get(int(mine.stdout)).queue == "team-a"
    refused = as_user(cluster, token, "queue", "create", "mine")
    assert refused.exit_code == 2
    assert "admin" in one_error_line(refused)


def test_an_unknown_token_is_refused_in_one_line(cluster: Cluster) -> None:
    result = as_user(cluster, "aios_not-a-token", "ps")

    assert result.exit_code == 2
    assert one_error_line(result) == "unknown or revoked token"


def test_whoami_of_the_admin(cluster: Cluster) -> None:
    result = cluster.aios("whoami")

    assert result.exit_code == 0
    assert result.stdout == f"admin (admin) at {cluster.url}\n"


def test_a_token_file_names_the_user(cluster: Cluster, tmp_path: Path) -> None:
    """``--token-file`` reads the token from a file: the secret is never an argument."""
    if "team-f" not in {q.name for q in cluster.admin.queues()}:
        cluster.admin.create_queue("team-f")
    token_file = tmp_path / "fiona.token"
    token_file.write_text(cluster.admin.create_token("fiona", tenant="team-f") + "\n")
    env = {**cluster.env(), "AIOS_HOME": "/nonexistent"}

    result = CliRunner(env=env).invoke(app, ["--token-file", str(token_file), "whoami"])

    assert result.stdout == f"fiona (tenant team-f) at {cluster.url}\n", result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "aios_secret", "whoami"], "--token: a token on the command line is visible"),
        (["--token-file", "/nonexistent/token", "whoami"], "--token-file: cannot read"),
    ],
)
def test_a_token_on_the_command_line_or_an_unreadable_file_is_refused(
    cluster: Cluster, args: list[str], message: str
) -> None:
    """A token given as an argument (which ``ps`` shows every user) is refused before
    anything is sent: one line naming --token-file and AIOS_TOKEN, exit code 2."""
    result = CliRunner(env=cluster.env()).invoke(app, args)

    assert result.exit_code == 2
    line = one_error_line(result)
    assert line.startswith(message)
    assert "aios_secret" not in line
    if args[0] == "--token":
        assert "--token-file" in line and "AIOS_TOKEN" in line
