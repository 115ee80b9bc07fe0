"""The stage wrapper run directly, as each replica of a job runs it on its node (its
plan in the job's control directory, the command after ``--``): the order in which a
gang's replicas reach it must not change what they do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aios.data.backend import LocalBackend
from aios.data.datasets import DataStore
from aios.data.repository import Repository
from aios.lineage.plan import DataPlan
from tests.data.interference import append, interfere
from tests.lineage.conftest import PASSPHRASE


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    source = tmp_path / "raw"
    source.mkdir()
    (source / "a.txt").write_text("alpha\n")
    location = tmp_path / "data"
    with Repository.init(LocalBackend(location), PASSPHRASE) as repository:
        DataStore(repository).add("raw", source, "first")
    return location


def _stage(
    plan: DataPlan, workdir: Path, replica: int, *options: str
) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    control = workdir.with_name(f"{workdir.name}.control")
    control.mkdir(exist_ok=True)
    plan.write(control)
    env = {
        "AIOS_DATA_PASSPHRASE": PASSPHRASE,
        "AIOS_REPLICA": str(replica),
        "AIOS_OUTPUTS": str(workdir / "outputs"),
        "PATH": "/bin:/usr/bin",
    }
    command = ["/bin/sh", "-c", plan.command[0]]
    return subprocess.run(
        [sys.executable, "-I", "-m", "aios.lineage.stage", *options, str(control), "--", *command],
        check=False,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_replica_that_starts_after_its_gang_published_still_runs_its_part(
    repo: Path, tmp_path: Path
) -> None:
    """Replica 1 reaching the wrapper only once replica 0 of the same job has published
    does not take that job's own outputs for an earlier run's: it runs its command."""
    marker = tmp_path / "marker"
    command = f'echo "$AIOS_REPLICA" >> {marker}; echo x > "$AIOS_OUTPUTS/g/x"'
    plan = DataPlan(7, str(repo), ["raw@1"], ["g"], True, [command], True)
    workdir = tmp_path / "job"
    first = _stage(plan, workdir, replica=0)
    assert first.returncode == 0, first.stderr
    late = _stage(plan, workdir, replica=1)
    assert late.returncode == 0, late.stderr
    assert "reused" not in late.stdout
    assert marker.read_text().split() == ["0", "1"]


def test_a_later_job_with_the_same_command_and_inputs_reuses_the_outputs(
    repo: Path, tmp_path: Path
) -> None:
    """Another job of the same command on the same inputs skips the command, on every
    replica, naming the job it reuses."""
    marker = tmp_path / "marker"
    command = f'echo "$AIOS_REPLICA" >> {marker}; echo x > "$AIOS_OUTPUTS/g/x"'
    first = DataPlan(7, str(repo), ["raw@1"], ["g"], True, [command], True)
    assert _stage(first, tmp_path / "first", replica=0).returncode == 0
    again = DataPlan(8, str(repo), ["raw@1"], ["g"], True, [command], True)
    for replica in (0, 1):
        reused = _stage(again, tmp_path / "again", replica=replica)
        assert reused.returncode == 0, reused.stderr
        assert "of job 7" in reused.stdout
    assert marker.read_text().split() == ["0"]


def test_publishing_an_output_still_written_logs_it_and_keeps_the_version(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of an output that a process the command left behind still appends to is
    named by a warning line on the wrapper's stderr (the job's log); the version is
    published, marked not complete."""
    from aios.lineage.stage import _publish, open_store

    workdir = tmp_path / "job"
    output = workdir / "outputs" / "g"
    output.mkdir(parents=True)
    log = output / "train.log"
    log.write_text("step 1\n")
    plan = DataPlan(9, str(repo), [], ["g"], False, ["true"], True)
    store = open_store(str(repo), PASSPHRASE)
    try:
        with interfere(monkeypatch, log, lambda: append(log, b"step 2\n")):
            published = _publish(store, plan, [], workdir)
        version = store.version("g", published[0].version)
    finally:
        store.repo.close()
    assert capsys.readouterr().err.splitlines() == [
        "aios: warning: outputs/g/train.log changed while it was read; stored as read"
    ]
    assert (version.complete, version.changed) == (False, ("train.log",))


def test_a_sandboxed_jobs_inputs_lie_in_its_control_directory_linked_from_its_own(
    repo: Path, tmp_path: Path
) -> None:
    """With --private-inputs the versions are materialised where the job cannot reach
    (the sandbox binds them from there), and a link the job planted at ``inputs`` is
    replaced by one to them."""
    plan = DataPlan(7, str(repo), ["raw@1"], [], True, ["cat inputs/raw/a.txt"], True)
    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "inputs").symlink_to(tmp_path)  # planted by an earlier attempt
    control = workdir.with_name("job.control")
    for _ in range(2):  # a retry keeps the link it finds
        done = _stage(plan, workdir, 0, "--private-inputs", "host")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "alpha\n"
        assert os.readlink(workdir / "inputs") == str(control / "inputs")
    assert (control / "inputs" / "raw" / "a.txt").read_text() == "alpha\n"
    refused = _stage(plan, workdir, 0, "--private-inputs", "elsewhere")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1


@pytest.mark.parametrize("link", ["outputs", "outputs/g"])
def test_an_output_the_job_made_a_link_is_refused_not_published(
    repo: Path, tmp_path: Path, link: str
) -> None:
    """The wrapper publishes with the control plane's rights, so a job that leaves
    ``outputs`` or ``outputs/NAME`` a link to what it cannot read (here a directory
    standing for the control plane's home) gets an error naming the link, and nothing
    of the link's target becomes a dataset."""
    secret = tmp_path / "plane" / "g"
    secret.mkdir(parents=True)
    (secret / "admin.token").write_text("aios_admin_secret\n")
    target = secret.parent if link == "outputs" else secret
    command = f'rm -rf "$AIOS_OUTPUTS/g"; rm -rf {link}; ln -s {target} {link}'
    plan = DataPlan(11, str(repo), [], ["g"], False, [command], True)
    staged = _stage(plan, tmp_path / "job", replica=0)
    assert staged.returncode != 0
    assert "symlink" in staged.stderr and link in staged.stderr
    with Repository.open(LocalBackend(repo), PASSPHRASE) as repository:
        assert "g" not in {d.name for d in DataStore(repository).datasets()}
