"""Jobs read dataset versions materialised read-only in their directory and publish
their outputs as new versions; a rerun on the same inputs reuses them. (A job sees only
its own directory: whether its command ran is read from its log.)"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from aios.client import ApiError
from aios.control.specs import PipelineSpec
from tests.control.control_harness import Running
from tests.executors.oci import oci_layout, static_busybox
from tests.lineage.conftest import open_store

UPPER = (
    'for f in "$AIOS_INPUTS"/raw/*.txt; do '
    'tr a-z A-Z < "$f" > "$AIOS_OUTPUTS/clean/$(basename $f)"; '
    "done; echo ran"
)


def _run(running: Running, command: str, **kwargs: object) -> int:
    job = running.admin.submit(command, **kwargs)  # type: ignore[arg-type]
    done = running.admin.wait(job.id, timeout=60)
    assert done.state == "succeeded", (done.message, _stderr(running, job.id))
    return job.id


def _stderr(running: Running, job_id: int) -> str:
    path = running.home / "jobs" / str(job_id) / "stderr.log"
    return path.read_text() if path.exists() else ""


def _stdout(running: Running, job_id: int, replica: int = 0) -> str:
    name = "stdout.log" if replica == 0 else f"stdout.{replica}.log"
    path = running.home / "jobs" / str(job_id) / name
    return path.read_text() if path.exists() else ""


def _ran(running: Running, *job_ids: int) -> int:
    """How many of the jobs ran their command (it prints "ran")."""
    return sum(_stdout(running, job_id).split().count("ran") for job_id in job_ids)


def test_a_job_reads_an_input_version_and_publishes_its_output(
    data_plane: Running, tmp_path: Path
) -> None:
    job_id = _run(data_plane, UPPER, inputs=["raw@1"], outputs=["clean"])
    store = open_store(data_plane)
    try:
        clean = store.version("clean", "latest")
        assert clean.version == 1
        assert clean.lineage["job"] == job_id
        assert clean.lineage["inputs"] == ["raw@1"]
        got = tmp_path / "got"
        store.get("clean", 1, got)
        assert (got / "a.txt").read_text() == "ALPHA\n"
        assert (got / "b.txt").read_text() == "BETA\n"
    finally:
        store.repo.close()
    materialised = data_plane.home / "jobs" / str(job_id) / "inputs" / "raw"
    assert (materialised / "a.txt").read_text() == "alpha\n"
    assert stat.S_IMODE((materialised / "a.txt").stat().st_mode) == 0o444
    assert stat.S_IMODE(materialised.stat().st_mode) == 0o555


def test_a_job_in_an_image_reads_its_inputs(data_plane: Running) -> None:
    """In an image the inputs are bound at /.aios/inputs, where ``inputs`` in the job's
    directory (``/job``) and ``$AIOS_INPUTS`` lead."""
    static_busybox()
    if data_plane.plane.sandbox is None:
        pytest.skip("no sandbox on this machine (bubblewrap is not installed)")
    images = Path(tempfile.mkdtemp(prefix="aios-images-"))  # any user may read it
    images.chmod(0o755)
    try:
        layout = oci_layout(images / "busybox")
        command = 'cat inputs/raw/a.txt "$AIOS_INPUTS/raw/b.txt"; echo $AIOS_INPUTS'
        job_id = _run(data_plane, command, inputs=["raw@1"], image=str(layout), memory="512M")
    finally:
        shutil.rmtree(images)
    assert _stdout(data_plane, job_id).split() == ["alpha", "beta", "/job/inputs"]


def test_the_passphrase_does_not_reach_the_command(data_plane: Running) -> None:
    job_id = _run(data_plane, 'echo "[${AIOS_DATA_PASSPHRASE:-none}]"', inputs=["raw"])
    assert _stdout(data_plane, job_id) == "[none]\n"


def test_a_rerun_on_the_same_inputs_reuses_the_outputs_without_running(
    data_plane: Running,
) -> None:
    command = UPPER
    first = _run(data_plane, command, inputs=["raw@latest"], outputs=["clean"])
    second = _run(data_plane, command, inputs=["raw@1"], outputs=["clean"])
    assert (_ran(data_plane, first), _ran(data_plane, second)) == (1, 0)
    assert f"reused the outputs of job {first}" in data_plane.admin.get(second).message
    store = open_store(data_plane)
    try:
        assert [v.version for v in store.versions("clean")] == [1]
    finally:
        store.repo.close()
    third = _run(data_plane, command, inputs=["raw@1"], outputs=["clean"], cache=False)
    assert _ran(data_plane, third) == 1


def test_a_new_input_version_runs_the_command_again(data_plane: Running, tmp_path: Path) -> None:
    command = UPPER
    first = _run(data_plane, command, inputs=["raw@latest"], outputs=["clean"])
    source = tmp_path / "raw2"
    source.mkdir()
    (source / "a.txt").write_text("gamma\n")
    store = open_store(data_plane)
    try:
        store.add("raw", source, "second")
    finally:
        store.repo.close()
    second = _run(data_plane, command, inputs=["raw@latest"], outputs=["clean"])
    assert _ran(data_plane, first, second) == 2
    store = open_store(data_plane)
    try:
        assert store.version("clean", 2).lineage["inputs"] == ["raw@2"]
    finally:
        store.repo.close()


def test_a_failed_job_publishes_nothing(data_plane: Running) -> None:
    job = data_plane.admin.submit(
        'echo partial > "$AIOS_OUTPUTS/clean/x"; exit 3', inputs=["raw"], outputs=["clean"]
    )
    done = data_plane.admin.wait(job.id, timeout=60)
    assert (done.state, done.exit_code) == ("failed", 3)
    store = open_store(data_plane)
    try:
        assert store.versions("clean", missing_ok=True) == []
    finally:
        store.repo.close()


@pytest.mark.parametrize(
    ("inputs", "outputs", "named"),
    [
        (["nosuch@1"], [], "no dataset 'nosuch'"),
        (["raw@7"], [], "has no version '7'"),
        (["raw@"], [], "raw@"),
        (["raw", "raw@1"], [], "named twice"),
        ([], ["../up"], "../up"),
    ],
)
def test_bad_data_references_are_refused_at_submission(
    data_plane: Running, inputs: list[str], outputs: list[str], named: str
) -> None:
    with pytest.raises(ApiError) as caught:
        data_plane.admin.submit("true", inputs=inputs, outputs=outputs)
    assert caught.value.status in {400, 422}
    assert named in str(caught.value)
    assert data_plane.admin.jobs() == []


def test_a_pipeline_step_reads_what_an_earlier_step_published(
    data_plane: Running, tmp_path: Path
) -> None:
    pipeline = data_plane.admin.submit_pipeline(
        PipelineSpec.model_validate(
            {
                "name": "prep-and-count",
                "steps": {
                    "prepare": {
                        "command": UPPER,
                        "inputs": ["raw@1"],
                        "outputs": ["clean"],
                    },
                    "count": {
                        "command": (
                            'cat "$AIOS_INPUTS"/clean/*.txt | wc -l > "$AIOS_OUTPUTS/stats/n"'
                        ),
                        "inputs": ["clean@latest"],
                        "outputs": ["stats"],
                        "needs": ["prepare"],
                    },
                },
            }
        )
    )
    done = data_plane.admin.wait_pipeline(pipeline.id, timeout=90)
    assert done.state == "succeeded", {s: j.message for s, j in done.steps.items()}
    store = open_store(data_plane)
    try:
        stats = store.version("stats", "latest")
        assert stats.lineage["inputs"] == ["clean@1"]
        assert stats.lineage["job"] == done.steps["count"].id
        got = tmp_path / "stats"
        store.get("stats", 1, got)
        assert (got / "n").read_text().strip() == "2"
    finally:
        store.repo.close()
    assert os.environ.get("AIOS_DATA_PASSPHRASE")


def test_every_replica_of_a_gang_skips_a_reused_run(data_plane: Running) -> None:
    command = 'echo "ran $AIOS_REPLICA"; echo x > "$AIOS_OUTPUTS/g/x"'
    jobs = [
        _run(data_plane, command, inputs=["raw@1"], outputs=["g"], replicas=2, cpus="500m")
        for _ in range(2)
    ]
    ran = {job: [_stdout(data_plane, job, r).count("ran ") for r in (0, 1)] for job in jobs}
    assert ran == {jobs[0]: [1, 1], jobs[1]: [0, 0]}  # the first run only
