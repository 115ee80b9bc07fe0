"""A Ray node dies in the middle of a job or a gang: its replicas are lost, the job is
retried per its policy (whole, for a gang) on the nodes left, and nodes that join are
used at once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from tests.cluster.conftest import RayPlane, add_node
from tests.processes import naming


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


NAP = f"sleep 0.10{os.getpid()}"
"""The gang's replicas' pause: no other run's command line names it, and every process
of a replica names it (its wrapper, its sandbox, its command)."""


def _log(plane: RayPlane, job_id: int, replica: int = 0) -> str:
    return "".join(plane.admin.logs(job_id, replica=replica))


def test_a_job_on_a_dead_node_is_retried_on_a_node_that_joins(ray_plane: RayPlane) -> None:
    kind = {"num_gpus": 1, "resources": {"accelerator_type:K80": 1}}
    doomed = add_node(ray_plane.cluster, **kind)
    _until(
        lambda: any(n.gpus and n.gpus[0].model == "K80" for n in ray_plane.admin.nodes()),
        "the K80 node never joined",
    )
    job = ray_plane.admin.submit(
        'echo "attempt $AIOS_ATTEMPT on $AIOS_NODE"; [ "$AIOS_ATTEMPT" = 1 ] && sleep 60; true',
        gpus=1,
        gpu_kind="K80",
        retries=1,
    )
    _until(lambda: "attempt 1" in _log(ray_plane, job.id), "the job never started")
    first_node = ray_plane.admin.get(job.id).attempts[0].node
    ray_plane.cluster.remove_node(doomed)
    _until(lambda: ray_plane.admin.get(job.id).state == "queued", "the job was not requeued")
    assert first_node not in {n.name for n in ray_plane.admin.nodes()}
    lost = ray_plane.admin.get(job.id).attempts[0]
    assert lost.reason == "lost" and first_node in lost.message
    replacement = add_node(ray_plane.cluster, **kind)
    try:
        done = ray_plane.admin.wait(job.id, timeout=60)
        assert done.state == "succeeded", done.message
        assert [a.reason for a in done.attempts] == ["lost", "succeeded"]
        assert done.attempts[1].node != first_node
        events = [e.kind for e in ray_plane.admin.events()]
        assert "node_left" in events and "node_joined" in events
    finally:
        ray_plane.cluster.remove_node(replacement)


def test_a_gang_loses_a_node_and_is_released_whole(ray_plane: RayPlane) -> None:
    kind = {"num_gpus": 1, "resources": {"accelerator_type:V100": 1}}
    survivor = add_node(ray_plane.cluster, **kind)
    doomed = add_node(ray_plane.cluster, **kind)
    try:
        _until(
            lambda: (
                sum(bool(n.gpus and n.gpus[0].model == "V100") for n in ray_plane.admin.nodes())
                == 2
            ),
            "the V100 nodes never joined",
        )
        job = ray_plane.admin.submit(
            f"trap 'echo stopped; exit 143' TERM; echo up; while true; do {NAP}; done",
            replicas=2,
            gpus=1,
            gpu_kind="V100",
            grace=5,
        )
        _until(
            lambda: "up" in _log(ray_plane, job.id) and "up" in _log(ray_plane, job.id, 1),
            "the gang never started",
        )
        ray_plane.cluster.remove_node(doomed)
        done = ray_plane.admin.wait(job.id, timeout=60)
        assert done.state == "failed"
        assert done.attempts[0].reason == "lost"
        logs = _log(ray_plane, job.id) + _log(ray_plane, job.id, 1)
        assert "stopped" in logs  # the replica on the surviving node was stopped, not left
        _until(
            lambda: all(g.job_id is None for n in ray_plane.admin.nodes() for g in n.gpus),
            "the survivor's GPU was not released",
        )
        # The dead node's replica ended with its agent, on its lifeline: it would run
        # on unwatched otherwise (both "nodes" are this machine, so it would show here).
        _until(lambda: not naming(NAP), "a replica of the dead node runs on")
    finally:
        ray_plane.cluster.remove_node(survivor)
