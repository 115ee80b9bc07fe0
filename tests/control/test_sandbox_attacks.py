"""The attack matrix of issue 15, row by row, as a hostile tenant's job would try it on a
control plane that runs jobs sandboxed (the default where bubblewrap is installed).

Each test is one attack and states what stops it. The API-side rows live beside the code
they test: cross-site and rebinding requests in ``test_perimeter.py``, other tenants'
datasets in ``tests/lineage/test_access.py``, a replica reached directly in
``tests/deployments/test_replica_secret.py``, a downgraded repository config in
``tests/data/store/test_config_auth.py``, a malicious pickle in
``tests/registry/test_probe_sandbox.py``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aios.client import Client
from aios.control.specs import JobView
from aios.executors.sandbox import Sandbox
from tests.control.control_harness import Running, start_plane, stop_plane
from tests.processes import with_argv

SECRET = "the control plane's own secret"


@pytest.fixture
def tenants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Running, Client, Client]]:
    """A control plane (its environment holding secrets) with two tenants, alpha and
    beta, each with a token of its own."""
    yield from _tenants(tmp_path, monkeypatch)


@pytest.fixture(params=["tenant-uid", "user-namespace"])
def either_tenants(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Running, Client, Client]]:
    """:func:`tenants` with each kind of sandbox: one uid per tenant (a control plane
    running as root), and a user namespace of the control plane's own uid (one that does
    not: built here as root too, so that its jobs have every right it has)."""
    if request.param == "tenant-uid" and os.geteuid() != 0:
        pytest.skip("only a control plane running as root gives each tenant a uid")
    if request.param == "user-namespace":
        detect = Sandbox.detect

        def rootless(hidden: tuple[str, ...] = ()) -> Sandbox:
            return dataclasses.replace(detect(hidden), root=False)

        monkeypatch.setattr(Sandbox, "detect", rootless)
    yield from _tenants(tmp_path, monkeypatch)


def _tenants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Running, Client, Client]]:
    monkeypatch.setenv("AIOS_DATA_PASSPHRASE", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    running = start_plane(tmp_path / "home")
    if running.plane.sandbox is None:
        stop_plane(running)
        pytest.skip("no sandbox on this machine (bubblewrap is not installed)")
    for queue in ("alpha", "beta"):
        running.admin.create_queue(queue)
    alpha = running.client(running.admin.create_token("alice", tenant="alpha"))
    beta = running.client(running.admin.create_token("bob", tenant="beta"))
    try:
        yield running, alpha, beta
    finally:
        alpha.close()
        beta.close()
        stop_plane(running)


def run(client: Client, command: str, **options: object) -> tuple[JobView, str]:
    """Runs ``command`` as a job of ``client``'s tenant; its end and its stdout."""
    options.setdefault("memory", "512M" if sys.executable in command else "64M")
    job = client.submit(command, cpus=0.5, **options)  # type: ignore[arg-type]
    done = client.wait(job.id, timeout=60)
    return done, "".join(client.logs(job.id))


def _wait_up(client: Client, job_id: int) -> None:
    """Waits until the job printed "up": its processes exist, not only its state."""
    deadline = time.monotonic() + 30
    while "up" not in "".join(client.logs(job_id)):
        assert time.monotonic() < deadline, f"job {job_id} never printed up"
        time.sleep(0.05)


def test_a_job_cannot_read_the_admin_token(tenants: tuple[Running, Client, Client]) -> None:
    """The control plane's home is an empty directory in every sandbox."""
    running, alpha, _ = tenants
    token = (running.home / "admin.token").read_text().strip()
    _, out = run(alpha, f"cat {running.home}/admin.token ../../admin.token; ls -a {running.home}")
    assert token not in out
    assert sorted(out.split()) == [".", "..", "jobs"]  # only the path to its own directory


def test_a_job_cannot_read_the_control_planes_secrets(
    tenants: tuple[Running, Client, Client],
) -> None:
    """Nothing of the control plane's environment reaches a job, and no process of the
    control plane is there to read one from."""
    _, alpha, _ = tenants
    done, out = run(alpha, "env; cat /proc/*/environ | tr '\\0' '\\n'")
    assert done.state == "succeeded"
    assert SECRET not in out
    assert "AIOS_DATA_PASSPHRASE" not in out


def test_a_job_cannot_read_another_jobs_log_env_or_the_database(
    tenants: tuple[Running, Client, Client],
) -> None:
    running, alpha, beta = tenants
    victim, _ = run(alpha, "echo alpha-private-output", env={"TOKEN_OF_ALPHA": "s3cr3t"})
    jobs = running.home / "jobs"
    _, out = run(
        beta,
        f"cat {jobs}/{victim.id}/stdout.log; cat {running.home}/aios.db; "
        f"cat {running.home}/aios.db-wal; ls {jobs}",
    )
    assert "alpha-private-output" not in out
    assert "s3cr3t" not in out
    assert str(victim.id) not in out.split()


def test_an_inputs_link_planted_for_a_retry_shows_nothing_hidden(
    either_tenants: tuple[Running, Client, Client],
) -> None:
    """A job links ``inputs`` in its directory to the control plane's home (``../..``),
    or to the directory of every job (``..``), and fails; its retry looks through the
    link. The sandbox is built with the control plane's rights, but never from a path
    the job controls: what the retry finds there is what its sandbox shows anyway (the
    masks), nothing hidden."""
    running, alpha, beta = either_tenants
    token = (running.home / "admin.token").read_text().strip()
    victim, _ = run(alpha, "echo alpha-private-output")
    looks = {
        "../..": "ls -a inputs/ inputs/jobs; cat inputs/admin.token",
        "..": f"ls -a inputs/; cat inputs/{victim.id}/stdout.log",
    }
    for target, look in looks.items():
        plant = f"test -L inputs || {{ rm -rf inputs; ln -s {target} inputs; exit 1; }}"
        done, out = run(beta, f"{plant}; {look}; echo looked", retries=1)
        stderr = "".join(beta.logs(done.id, stream="stderr"))
        assert len(done.attempts) == 2 and "looked" in out, stderr  # the retry looked
        assert token not in out
        assert "admin.token" not in out and "aios.db" not in out
        assert "alpha-private-output" not in out
        assert str(victim.id) not in out.split()


def test_a_log_swapped_for_a_symlink_is_refused_not_followed(
    tenants: tuple[Running, Client, Client],
) -> None:
    """A job links its log to another job's (or to any file): the API answers 409 and
    serves nothing of the other file."""
    running, alpha, beta = tenants
    victim, _ = run(alpha, "echo alpha-private-output")
    other = running.home / "jobs" / str(victim.id) / "stdout.log"
    job = beta.submit(
        f"rm stdout.log; ln -s {other} stdout.log; rm stderr.log; ln -s /etc/shadow stderr.log",
        memory="64M",
        cpus=0.5,
    )
    done = beta.wait(job.id, timeout=60)
    response = httpx.get(f"{running.url}/api/v1/jobs/{done.id}/logs", headers=beta._http.headers)
    assert response.status_code == 409
    assert "alpha-private-output" not in response.text
    stderr = httpx.get(
        f"{running.url}/api/v1/jobs/{done.id}/logs",
        params={"stream": "stderr"},
        headers=beta._http.headers,
    )
    assert stderr.status_code == 409
    assert "root:" not in stderr.text


def test_a_job_cannot_signal_the_control_plane_or_other_jobs(
    tenants: tuple[Running, Client, Client],
) -> None:
    """Its PID namespace holds its own processes only: the control plane's pid names
    nothing there, and killing every process it can see kills only itself."""
    running, alpha, beta = tenants
    sleeper = alpha.submit("echo up; exec sleep 30", memory="64M", cpus=0.5)
    _wait_up(alpha, sleeper.id)
    done, out = run(beta, f"kill -9 {os.getpid()} || echo no-such-process; kill -9 -1; echo alive")
    assert "no-such-process" in out
    assert running.admin.get(sleeper.id).state == "running"
    os.kill(os.getpid(), 0)  # the control plane (this process) lives
    assert done.state in {"succeeded", "failed"}
    alpha.cancel(sleeper.id)


def test_a_job_does_not_see_other_jobs_in_ps(tenants: tuple[Running, Client, Client]) -> None:
    _, alpha, beta = tenants
    sleeper = alpha.submit("echo up; exec sleep 31.5", memory="64M", cpus=0.5)
    _wait_up(alpha, sleeper.id)
    done, out = run(beta, "ps ax")
    assert done.state == "succeeded"
    assert "31.5" not in out
    assert "aios" not in out.replace("aios-replica", "")  # no control plane process
    assert len(out.strip().splitlines()) <= 5  # header, its init, its shell, ps
    alpha.cancel(sleeper.id)


def test_a_job_cannot_write_outside_its_directory(
    tenants: tuple[Running, Client, Client], tmp_path: Path
) -> None:
    """The host's root is read-only, /tmp is its own, its directory alone is writable."""
    _, alpha, _ = tenants
    outside = tmp_path / "escaped"
    repo = Path(__file__).resolve().parents[2]
    done, out = run(
        alpha,
        f"touch {outside} || echo refused-tmp; touch {repo}/escaped || echo refused-repo; "
        "touch /etc/escaped || echo refused-etc; touch /tmp/private && echo tmp-is-its-own; "
        "touch mine && echo own-directory",
    )
    assert done.state == "succeeded"
    assert out.split() == [
        "refused-tmp",
        "refused-repo",
        "refused-etc",
        "tmp-is-its-own",
        "own-directory",
    ]
    assert not outside.exists()
    assert not (repo / "escaped").exists()
    assert not Path("/tmp/private").exists()


def test_jobs_of_two_tenants_run_as_two_users_and_neither_as_root(
    tenants: tuple[Running, Client, Client],
) -> None:
    """Where the control plane runs as root, each tenant's jobs have its own uid."""
    running, alpha, beta = tenants
    _, first = run(alpha, "id -u")
    _, second = run(beta, "id -u")
    uids = {int(first), int(second)}
    assert 0 not in uids
    if os.geteuid() == 0:
        assert len(uids) == 2
        by_queue = {q.name: q for q in running.admin.queues()}
        assert set(by_queue) >= {"alpha", "beta"}


def test_a_job_without_network_has_only_its_own_loopback(
    tenants: tuple[Running, Client, Client],
) -> None:
    """``network: none``: the control plane's API (on the host's loopback) is out of
    reach; with the host's network (the default) the job reaches it with its token."""
    _, alpha, _ = tenants
    reach = (
        f'{sys.executable} -c "import urllib.request, os; '
        "r = urllib.request.Request(os.environ['AIOS_URL'] + '/api/v1/whoami', "
        "headers={'Authorization': 'Bearer ' + os.environ['AIOS_TOKEN']}); "
        'print(urllib.request.urlopen(r, timeout=5).read().decode())"'
    )
    cut, out = run(alpha, reach, network="none")
    assert cut.state == "failed"
    joined, out = run(alpha, reach)
    assert joined.state == "succeeded", out
    assert '"tenant":"alpha"' in out and '"admin":false' in out


def test_a_jobs_own_token_has_its_queues_rights_and_dies_with_it(
    tenants: tuple[Running, Client, Client],
) -> None:
    """Even an admin's job holds a token of its queue, never an admin's (unless asked
    with as_admin); the token stops working when the job ends."""
    running, _, _ = tenants
    script = (
        "from aios.client import Client; import os; c = Client(); "
        "print(c.whoami().tenant, c.whoami().admin); print(os.environ['AIOS_TOKEN'])"
    )
    done, out = run(running.admin, f'{sys.executable} -c "{script}"', queue="alpha")
    assert done.state == "succeeded", out
    rights, token = out.split("\n")[0], out.split("\n")[1]
    assert rights == "alpha False"
    response = httpx.get(
        f"{running.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401  # revoked with the job's end
    elevated, out = run(running.admin, f'{sys.executable} -c "{script}"', as_admin=True)
    assert elevated.state == "succeeded", out
    assert out.split("\n")[0] == "None True"


def test_only_an_admin_may_give_a_job_an_admins_token(
    tenants: tuple[Running, Client, Client],
) -> None:
    from aios.client import ApiError

    _, alpha, _ = tenants
    with pytest.raises(ApiError) as refused:
        alpha.submit("true", memory="64M", as_admin=True)
    assert refused.value.status == 403


def test_a_stopped_jobs_processes_all_die(tenants: tuple[Running, Client, Client]) -> None:
    """A job that forks into the background and ignores SIGTERM is gone whole once
    cancelled: its sandbox's PID namespace ends with it."""
    _, alpha, _ = tenants
    command = "trap '' TERM; (sleep 300 &); echo up; sleep 300"
    job = alpha.submit(command, memory="64M", cpus=0.5, grace=0.5)
    _wait_up(alpha, job.id)
    alpha.cancel(job.id)
    assert alpha.wait(job.id, timeout=30).state == "cancelled"
    leftovers = with_argv(["sleep", "300"])
    for pid in leftovers:  # not to leave them behind if the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert leftovers == []


_PRELOAD = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void escape(void) {
    char line[512];
    FILE *shadow;
    if (geteuid() != 0) return;
    printf("PRELOADED-AS-ROOT\n");
    shadow = fopen("/etc/shadow", "r");
    if (shadow != NULL && fgets(line, sizeof line, shadow) != NULL) printf("%s", line);
    fflush(stdout);
}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root control plane runs setpriv as root")
@pytest.mark.skipif(not shutil.which("gcc"), reason="the attack compiles a library with gcc")
def test_a_jobs_environment_reaches_no_process_that_runs_as_root(
    tenants: tuple[Running, Client, Client],
) -> None:
    """A job compiles a library in its directory, fails, and its retry preloads it
    (``LD_PRELOAD`` in its own environment): every process before the drop to the
    tenant's uid runs with a clean environment, so the library only ever runs as the
    tenant, never as root with /etc/shadow readable."""
    _, alpha, _ = tenants
    build = (
        f"test -e escape.so && exit 0; cat >escape.c <<'EOF'\n{_PRELOAD}\nEOF\n"
        "gcc -shared -fPIC -o escape.so escape.c && exit 1; exit 2"
    )
    job = alpha.submit(build, cpus=0.5, memory="512M", retries=1, env={"LD_PRELOAD": "./escape.so"})
    done = alpha.wait(job.id, timeout=120)
    out = "".join(alpha.logs(job.id))
    assert done.state == "succeeded", out
    assert len(done.attempts) == 2, out  # the second attempt, the library built
    assert "PRELOADED-AS-ROOT" not in out
    assert "root:" not in out


def test_a_jobs_process_holds_no_capability_and_no_new_privileges(
    tenants: tuple[Running, Client, Client],
) -> None:
    """Every capability set of the job's process is empty (effective, permitted,
    inheritable, bounding, ambient), it can gain none through a setuid binary, and it
    holds no descriptor but its standard three: none the sandbox was built from, none
    the control plane inherited from whatever started it."""
    _, alpha, _ = tenants
    done, out = run(alpha, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; ls /proc/$$/fd")
    assert done.state == "succeeded", out
    lines = out.strip().splitlines()
    assert lines[6:] == ["0", "1", "2"]  # neither the sandbox's nor the control plane's
    status = dict(line.split(":\t") for line in lines[:6])
    assert status == {
        "CapInh": "0000000000000000",
        "CapPrm": "0000000000000000",
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
        "CapAmb": "0000000000000000",
        "NoNewPrivs": "1",
    }
