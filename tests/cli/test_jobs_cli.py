"""``aios submit|ps|show|logs|cancel|wait`` against a real control plane on loopback."""

from __future__ import annotations

import os

import pytest

from tests.cli.cli_harness import Cluster, eventually, one_error_line, row_of, rows


def submit(cluster: Cluster, *args: str) -> int:
    result = cluster.aios("submit", *args)
    assert result.exit_code == 0, result.stderr
    return int(result.stdout)


def test_submit_wait_prints_the_id_then_how_the_job_ended(cluster: Cluster) -> None:
    """With --wait, submit prints the job id, follows it and exits 0 once it succeeded."""
    result = cluster.aios("submit", "--wait", "--", "echo", "hello")

    assert result.exit_code == 0, result.stderr
    job_id, ending = result.stdout.splitlines()
    assert ending == f"job {job_id} succeeded (exit 0)"
    assert cluster.admin.get(int(job_id)).command == ["echo", "hello"]


def test_logs_prints_what_the_job_wrote(cluster: Cluster) -> None:
    """logs streams the raw stdout of the job; --stderr its stderr."""
    job_id = submit(cluster, "--", "sh", "-c", "echo hello; echo oops >&2")
    assert cluster.aios("wait", job_id).exit_code == 0

    assert cluster.aios("logs", job_id).stdout == "hello\n"
    assert cluster.aios("logs", "--stderr", job_id).stdout == "oops\n"
    assert cluster.aios("logs", "-f", job_id).stdout == "hello\n"


def test_wait_exits_1_and_names_the_exit_code_of_a_failed_job(cluster: Cluster) -> None:
    job_id = submit(cluster, "--", "sh", "-c", "exit 3")

    result = cluster.aios("wait", job_id)

    assert result.exit_code == 1
    assert result.stdout.startswith(f"job {job_id} failed (exit 3)")


def test_without_shell_the_words_are_an_argv_and_with_it_one_shell_string(
    cluster: Cluster,
) -> None:
    argv = submit(cluster, "--", "echo", "a", "&&", "echo", "b")
    shell = submit(cluster, "--shell", "--", "echo", "a", "&&", "echo", "b")
    for job_id in (argv, shell):
        assert cluster.aios("wait", job_id).exit_code == 0

    assert cluster.aios("logs", argv).stdout == "a && echo b\n"
    assert cluster.aios("logs", shell).stdout == "a\nb\n"
    assert cluster.admin.get(shell).shell


def test_options_after_the_program_belong_to_the_job(cluster: Cluster) -> None:
    """``aios submit ls -la`` needs no ``--``: the words after the program are its own."""
    job_id = submit(
        cluster, "--name", "lister", "--env", "GREETING=hi there", "sh", "-c", "echo $GREETING"
    )

    job = cluster.admin.get(job_id)
    assert (job.name, job.command) == ("lister", ["sh", "-c", "echo $GREETING"])
    assert cluster.aios("wait", job_id).exit_code == 0
    assert cluster.aios("logs", job_id).stdout == "hi there\n"


def test_submit_passes_resources_and_scheduling_options(cluster: Cluster) -> None:
    first = submit(cluster, "--", "true")
    job_id = submit(
        cluster,
        *("--cpus", "500m", "--mem", "256M", "--gpus", "1", "--priority", "5"),
        *("--after", str(first), "--retries", "2", "--time-limit", "1h", "--no-preempt"),
        "--",
        "true",
    )

    job = cluster.admin.get(job_id)
    assert (job.cpus, job.memory, job.gpus, job.priority) == (0.5, 256 << 20, 1, 5)
    assert (job.after, job.max_retries, job.time_limit, job.preemptible) == (
        [first],
        2,
        3600.0,
        False,
    )
    assert cluster.aios("wait", job_id).exit_code == 0


def test_ps_shows_a_running_job_where_it_runs_until_it_is_cancelled(cluster: Cluster) -> None:
    """ps lists queued and running jobs with node and cores; cancel stops a running one;
    wait then exits 1; ps --all still lists it."""
    job_id = submit(cluster, "--name", "napper", "--gpus", "1", "--", "sleep", "60")
    eventually(lambda: cluster.admin.get(job_id).state == "running", "running")

    listed = cluster.aios("ps")
    assert listed.exit_code == 0, listed.stderr
    row = row_of(listed.stdout, job_id)
    assert row[1:5] == ["napper", "default", "running", "1 cpu 1.0Gi 1 gpu"]
    assert row[5] == "local"
    assert row[6].isdigit()  # the one core it was pinned to
    assert row[7] in {"0", "1"}

    cancelled = cluster.aios("cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"job {job_id} ")

    waited = cluster.aios("wait", job_id)
    assert waited.exit_code == 1
    assert waited.stdout.startswith(f"job {job_id} cancelled")
    assert str(job_id) not in [row[0] for row in rows(cluster.aios("ps").stdout)]
    assert row_of(cluster.aios("ps", "--all").stdout, job_id)[3] == "cancelled"
    assert row_of(cluster.aios("ps", "--state", "cancelled").stdout, job_id)[3] == "cancelled"


def test_ps_of_an_empty_selection_says_so_on_stderr(cluster: Cluster) -> None:
    result = cluster.aios("ps", "--queue", "nobody-uses-this")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "no queued or running jobs\n"


def test_show_has_the_spec_the_attempts_and_the_events(cluster: Cluster) -> None:
    job_id = submit(cluster, "--name", "shown", "--", "echo", "hi")
    assert cluster.aios("wait", job_id).exit_code == 0

    result = cluster.aios("show", job_id)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"job {job_id} shown\n")
    assert "echo hi" in result.stdout
    attempt = row_of(result.stdout, 1)
    assert attempt[1] == "local" and attempt[2].isdigit()
    assert attempt[7:9] == ["0", "succeeded"]
    kinds = [row[1] for row in rows(result.stdout) if len(row) == 3]
    assert kinds[0] == "submitted" and "succeeded" in kinds


def test_show_gives_each_replicas_node_and_pid(cluster: Cluster) -> None:
    """The pid shown is the replica's process on its node, the leader of its group: a
    signal to the group reaches the job."""
    job_id = submit(cluster, "--replicas", "2", "--", "sleep", "60")

    def launched() -> bool:
        attempts = cluster.admin.get(job_id).attempts
        return bool(attempts) and all(p.pid is not None for p in attempts[-1].replicas)

    eventually(launched, "launched")
    places = cluster.admin.get(job_id).attempts[-1].replicas
    assert [(p.replica, p.node) for p in places] == [(0, "local"), (1, "local")]

    attempt = row_of(cluster.aios("show", job_id).stdout, 1)

    pids = [p.pid for p in places]
    assert attempt[1:3] == ["local local", " ".join(map(str, pids))]
    for pid in pids:
        assert pid is not None and os.getpgid(pid) == pid  # alive, its group's leader
    assert cluster.aios("cancel", job_id).exit_code == 0


def test_wait_gives_up_after_its_timeout(cluster: Cluster) -> None:
    job_id = submit(cluster, "--", "sleep", "60")

    result = cluster.aios("wait", "--timeout", "0.3", job_id)

    assert result.exit_code == 1
    assert "still" in one_error_line(result)
    assert cluster.aios("cancel", job_id).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "--queue", "nope", "--", "true"], "queue: no queue named 'nope'"),
        (["submit", "--cpus", "-1", "--", "true"], "cpus: "),
        (["submit", "--mem", "lots", "--", "true"], "cannot parse memory quantity 'lots'"),
        (["submit", "--cpus", "999", "--", "true"], "more than any node has"),
        (["submit", "--env", "NOEQUALS", "--", "true"], "--env: expected KEY=VALUE"),
        (["submit", "--bogus", "--", "true"], "No such option: --bogus"),
        (["submit", "--gpus", "two", "--", "true"], "'--gpus'"),
        (["show", "999999"], "no job 999999"),
        (["cancel", "999999"], "no job 999999"),
        (["logs", "--replica", "3", "1"], "replica: "),
    ],
)
def test_a_refused_request_is_one_line_and_exit_2_and_creates_nothing(
    cluster: Cluster, args: list[str], message: str
) -> None:
    before = len(cluster.admin.jobs(limit=10_000))

    result = cluster.aios(*args)

    assert result.exit_code == 2
    assert message in one_error_line(result)
    assert result.stdout == ""
    assert len(cluster.admin.jobs(limit=10_000)) == before


def test_cancelling_a_job_that_ended_is_refused(cluster: Cluster) -> None:
    job_id = submit(cluster, "--", "true")
    assert cluster.aios("wait", job_id).exit_code == 0

    result = cluster.aios("cancel", job_id)

    assert result.exit_code == 2
    assert "already ended" in one_error_line(result)


def test_resubmit_prints_the_new_job_which_runs_the_same_command(cluster: Cluster) -> None:
    job_id = submit(cluster, "--env", "WORD=again", "--shell", "--", "echo", "$WORD")
    assert cluster.aios("wait", job_id).exit_code == 0

    result = cluster.aios("resubmit", job_id)

    assert result.exit_code == 0
    new_id = int(result.stdout.strip())
    assert new_id != int(job_id)
    assert cluster.aios("wait", new_id).exit_code == 0
    assert cluster.aios("logs", new_id).stdout == "again\n"


def test_resubmitting_an_unknown_job_is_one_error_line(cluster: Cluster) -> None:
    result = cluster.aios("resubmit", 99999)

    assert result.exit_code == 2
    assert "99999" in one_error_line(result)
