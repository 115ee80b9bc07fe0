"""The preemption search's GPU count: it may rule out a search only when the room scan
would find no room either, and it then leaves the index as the scan would."""

from __future__ import annotations

import random

from aios.scheduler import make_policy
from aios.scheduler.plugins.preemption import _gpus_could_hold
from aios.scheduler.room import RoomScan
from aios.scheduler.workspace import Workspace
from tests.scheduler.harness import gpu_node, job, new_state, occupy

POLICY = make_policy("las")


def test_the_gpu_count_rules_out_only_searches_that_find_no_room() -> None:
    """For random clusters, waiting gangs and sets of victims: whenever the GPU count
    says no, releasing every victim in the room scan leaves too little room too."""
    rng = random.Random(15)
    said_no = 0
    for trial in range(300):
        kinds = ("A100", "H100") if trial % 3 == 0 else ("A100",)
        nodes = [gpu_node(f"n{i}", 8, kind=rng.choice(kinds), cpus=16) for i in range(5)]
        state = new_state(POLICY, nodes)
        runs = []
        for i in range(rng.randint(3, 12)):
            name = rng.choice(nodes).name
            free = state.nodes[name].free_gpus
            kind = next(iter(free))
            gpus = rng.choice((1, 2, 4, 8))
            if len(free[kind]) >= gpus:
                runs.append(occupy(state, job(f"r{i}", gpus=gpus, cpus=rng.choice((1, 4))), name))
        waiting = job(
            "w",
            gpus=rng.choice((1, 2, 4, 8)),
            replicas=rng.choice((1, 2, 3)),
            kind=rng.choice((None, "A100")),
            cpus=rng.choice((1, 8)),
        )
        victims = rng.sample(runs, rng.randint(0, len(runs)))
        ws = Workspace(state, POLICY, 0.0)
        scan = RoomScan(ws, waiting)
        for running in victims:
            scan.release(running)
        if not _gpus_could_hold(waiting, ws, victims):
            said_no += 1
            assert scan.enough() < 0
    assert said_no >= 10  # the count did rule searches out
