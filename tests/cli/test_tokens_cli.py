"""Tokens: listed (never their text), revoked, given an expiry; a job's own token with its
queue's rights, revoked with the job or before it ends, and managing no tokens."""

from __future__ import annotations

import sys
import time

import httpx

from tests.cli.cli_harness import Cluster, eventually, one_error_line
from tests.cli.test_admin_cli import as_user


def _status(cluster: Cluster, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{cluster.url}/api/v1/whoami", headers=headers).status_code


def _queue(cluster: Cluster, name: str) -> None:
    if name not in {q.name for q in cluster.admin.queues()}:
        cluster.admin.create_queue(name)


def test_a_token_is_listed_without_its_text_and_revoked_at_once(cluster: Cluster) -> None:
    _queue(cluster, "team-t")
    token = cluster.aios("token", "create", "tina", "--tenant", "team-t").stdout.strip()
    assert _status(cluster, token) == 200
    listed = cluster.aios("token", "ls")
    assert listed.exit_code == 0, listed.stderr
    assert token not in listed.stdout
    (row,) = [r for r in _plain_rows(listed.stdout) if r[1] == "tina"]
    assert row[2] == "queue team-t" and row[-1] == "active"
    revoked = cluster.aios("token", "revoke", row[0])
    assert revoked.exit_code == 0, revoked.stderr
    assert _status(cluster, token) == 401
    after = _plain_rows(cluster.aios("token", "ls").stdout)
    assert next(r for r in after if r[1] == "tina")[-1] == "revoked"


def test_a_token_stops_working_at_its_expiry(cluster: Cluster) -> None:
    _queue(cluster, "team-t")
    made = cluster.aios("token", "create", "brief", "--tenant", "team-t", "--expires", "1s")
    assert made.exit_code == 0, made.stderr
    token = made.stdout.strip()
    assert _status(cluster, token) == 200
    time.sleep(1.2)
    assert _status(cluster, token) == 401
    refused = cluster.aios("token", "create", "never", "--tenant", "team-t", "--expires", "-5")
    assert refused.exit_code == 2
    assert "expires" in one_error_line(refused)


def test_a_member_lists_and_revokes_only_their_own_tokens(cluster: Cluster) -> None:
    _queue(cluster, "team-t")
    mine = cluster.aios("token", "create", "mia", "--tenant", "team-t").stdout.strip()
    listed = _plain_rows(as_user(cluster, mine, "token", "ls").stdout)
    assert {row[1] for row in listed} <= {"mia"} | {
        row[1] for row in listed if row[0].startswith("job")
    }
    others = [
        row[0] for row in _plain_rows(cluster.aios("token", "ls").stdout) if row[1] == "admin"
    ]
    refused = as_user(cluster, mine, "token", "revoke", others[0])
    assert refused.exit_code == 2
    assert one_error_line(refused) == f"no token {others[0]}"
    assert cluster.aios("whoami").exit_code == 0  # the admin's token still works


def test_a_jobs_token_ends_with_it_or_when_revoked_and_manages_no_tokens(
    cluster: Cluster,
) -> None:
    """A running job's token is listed as the job's; revoking it stops it at once while
    the job runs on; a job's token may not list tokens."""
    script = (
        "import os, time, urllib.request as u\n"
        "def status(path):\n"
        "    r = u.Request(os.environ['AIOS_URL'] + path, headers={'Authorization': "
        "'Bearer ' + os.environ['AIOS_TOKEN']})\n"
        "    try:\n"
        "        return u.urlopen(r, timeout=5).status\n"
        "    except Exception as e:\n"
        "        return getattr(e, 'code', 0)\n"
        "print('tokens', status('/api/v1/tokens'), flush=True)\n"
        "while not os.path.exists('go'):\n"
        "    time.sleep(0.05)\n"
        "print('whoami', status('/api/v1/whoami'), flush=True)\n"
    )
    job = cluster.admin.submit([sys.executable, "-c", script], memory="512M")
    eventually(lambda: cluster.admin.get(job.id).state == "running", "running")
    # The revoke must come after the job's first request, which nothing else orders.
    eventually(lambda: "tokens" in "".join(cluster.admin.logs(job.id)), "past its first request")
    listed = _plain_rows(cluster.aios("token", "ls").stdout)
    assert [row[0] for row in listed if row[0] == f"job {job.id}"] == [f"job {job.id}"]
    revoked = cluster.aios("token", "revoke", "--job", job.id)
    assert revoked.exit_code == 0, revoked.stderr
    (cluster.home / "jobs" / str(job.id) / "go").touch()
    done = cluster.admin.wait(job.id, timeout=30)
    assert done.state == "succeeded", done.message
    out = "".join(cluster.admin.logs(job.id)).split()
    assert out == ["tokens", "403", "whoami", "401"]


def _plain_rows(stdout: str) -> list[list[str]]:
    """The rows of a borderless table: its cells split on runs of two spaces."""
    import re

    lines = [line for line in stdout.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
