"""Jobs on a real multi-node Ray cluster: AIOS places them, Ray's node agents run them
with the local executor's isolation, logs and results come back, signals reach them."""

from __future__ import annotations

import time
from pathlib import Path

from aios.client import Client
from aios.control import ControlPlane, Settings
from tests.cluster.conftest import RayPlane, stop_agents
from tests.control.control_harness import free_port


def _node_named(plane: RayPlane, **wanted: int) -> str:
    for node in plane.admin.nodes():
        if all(node.capacity.get(k) == v for k, v in wanted.items()):
            return node.name
    raise AssertionError(f"no node with {wanted}")


def _log(plane: RayPlane, job_id: int, stream: str = "stdout") -> str:
    return "".join(plane.admin.logs(job_id, stream=stream))


def test_the_nodes_and_their_resources_come_from_ray(ray_plane: RayPlane) -> None:
    nodes = {n.name: n for n in ray_plane.admin.nodes()}
    assert all(name.startswith("ray-") for name in nodes)
    gpu_nodes = [n for n in nodes.values() if n.capacity.get("gpu")]
    assert [(n.capacity["gpu"], {g.model for g in n.gpus}) for n in gpu_nodes] == [(2, {"T4"})]
    assert [n.capacity.get("fast") for n in nodes.values() if "fast" in n.capacity] == [4]
    assert sorted(n.capacity["cpu"] for n in nodes.values())[-3:] == [2000, 2000, 2000]


def test_a_job_runs_on_the_node_the_scheduler_chose_and_its_log_comes_back(
    ray_plane: RayPlane,
) -> None:
    t4 = _node_named(ray_plane, gpu=2)
    job = ray_plane.admin.submit(
        'echo "node=$AIOS_NODE gpus=$CUDA_VISIBLE_DEVICES"; echo oops >&2', gpus=1, gpu_kind="T4"
    )
    done = ray_plane.admin.wait(job.id, timeout=60)
    assert (done.state, done.exit_code) == ("succeeded", 0), done.message
    assert done.attempts[-1].node == t4
    assert _log(ray_plane, job.id) == f"node={t4} gpus={done.attempts[-1].gpus[0][0]}\n"
    assert _log(ray_plane, job.id, "stderr") == "oops\n"


def test_a_python_function_returns_its_value_from_another_node(ray_plane: RayPlane) -> None:
    job = ray_plane.admin.submit(function=lambda x: x * 21, args=(2,), name="double")
    done = ray_plane.admin.wait(job.id, timeout=60)
    assert done.state == "succeeded", done.message
    assert ray_plane.admin.result(job.id) == 42


def test_cancel_delivers_sigterm_on_the_remote_node(ray_plane: RayPlane) -> None:
    job = ray_plane.admin.submit(
        "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        grace=10,
    )
    deadline = time.monotonic() + 30
    while "ready" not in _log(ray_plane, job.id):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    ray_plane.admin.cancel(job.id)
    done = ray_plane.admin.wait(job.id, timeout=30)
    assert done.state == "cancelled"
    assert "got TERM" in _log(ray_plane, job.id)


def test_a_gang_spans_nodes_under_one_placement_group_released_at_the_end(
    ray_plane: RayPlane,
) -> None:
    from ray.util import placement_group_table

    job = ray_plane.admin.submit(
        'echo "$AIOS_REPLICA on $AIOS_NODE"; sleep 1', replicas=2, cpus=2, memory="256M"
    )
    deadline = time.monotonic() + 30
    while not (created := [g for g in placement_group_table().values() if g["state"] == "CREATED"]):
        assert time.monotonic() < deadline, "no placement group was created"
        time.sleep(0.05)
    assert [len(g["bundles"]) for g in created] == [2]
    done = ray_plane.admin.wait(job.id, timeout=60)
    assert done.state == "succeeded", done.message
    assert len(done.attempts) == 1  # one attempt …
    lines = {
        _log(ray_plane, job.id).strip(),
        "".join(ray_plane.admin.logs(job.id, replica=1)).strip(),
    }
    assert len({line.split(" on ")[1] for line in lines}) == 2  # … on two nodes
    deadline = time.monotonic() + 10
    while any(g["state"] == "CREATED" for g in placement_group_table().values()):
        assert time.monotonic() < deadline, "the placement group was not removed"
        time.sleep(0.1)


def test_two_control_planes_on_one_ray_cluster_keep_their_own_jobs(
    ray_plane: RayPlane, tmp_path: Path
) -> None:
    """Both number their first job 1; each gets its own job's exit and log back."""
    other = ControlPlane(
        Settings(home=tmp_path / "other", port=free_port(), tick=0.2, ray=ray_plane.cluster.address)
    )
    other.start_background()
    assert other.admin_token_path is not None
    client = Client(other.url, token=Path(other.admin_token_path).read_text().strip())
    try:
        mine = ray_plane.admin.submit("sleep 1; echo mine; exit 3")
        theirs = client.submit("echo theirs")
        assert mine.id == theirs.id == 1
        assert client.wait(theirs.id, timeout=60).state == "succeeded"
        done = ray_plane.admin.wait(mine.id, timeout=60)
        assert (done.state, done.exit_code) == ("failed", 3)
        assert "".join(client.logs(theirs.id)) == "theirs\n"
        assert _log(ray_plane, mine.id) == "mine\n"
    finally:
        client.close()
        other.stop()
        stop_agents(other)


def test_preemption_reaches_a_job_on_a_ray_node(ray_plane: RayPlane, tmp_path: Path) -> None:
    """Low-priority jobs fill every node; a high-priority one preempts one of them: the
    victim gets SIGTERM on its node, ends preempted and goes back to its queue."""
    plane = ControlPlane(
        Settings(
            home=tmp_path / "prio",
            port=free_port(),
            tick=0.2,
            policy="priority",
            ray=ray_plane.cluster.address,
        )
    )
    plane.start_background()
    assert plane.admin_token_path is not None
    client = Client(plane.url, token=Path(plane.admin_token_path).read_text().strip())
    script = "trap 'echo got TERM; exit 143' TERM; echo ready; while true; do sleep 0.1; done"
    try:
        nodes = [n for n in client.nodes() if n.allocatable["cpu"] >= 2000]
        low = [client.submit(script, cpus=2, memory="64M", grace=10) for _ in nodes]
        deadline = time.monotonic() + 60
        while any("ready" not in "".join(client.logs(j.id)) for j in low):
            assert time.monotonic() < deadline, "the low-priority jobs never all ran"
            time.sleep(0.1)
        high = client.submit("echo urgent", cpus=2, memory="64M", priority=10)
        assert client.wait(high.id, timeout=60).state == "succeeded"
        victims = [job for job in (client.get(j.id) for j in low) if job.attempts[0].reason]
        assert [v.attempts[0].reason for v in victims] == ["preempted"]
        assert "got TERM" in "".join(client.logs(victims[0].id))
    finally:
        for job in client.jobs(limit=100):
            if job.state in {"queued", "running"}:
                client.cancel(job.id)
        for job in client.jobs(limit=100):
            client.wait(job.id, timeout=30)
        client.close()
        plane.stop()
        stop_agents(plane)
