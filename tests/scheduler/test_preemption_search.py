"""The preemption search's GPU count (it may rule out a search only when the room scan
would find no room either), what a search that finds no room leaves behind, and the
oracle's figures kept between looks."""

from __future__ import annotations

import random

from aios.scheduler import make_policy
from aios.scheduler.plugins.preemption import _Ends, _gpus_could_hold, select_victims
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


def test_a_search_that_finds_no_room_leaves_the_view_as_it_was() -> None:
    """Victims that free 4 GPUs on each of three nodes cannot make room for an 8-GPU
    job: the search says so and leaves the cycle's view as it found it, the order in
    which equally free nodes are offered and the index's version included (so what was
    worked out against the view still holds)."""
    state = new_state(POLICY, [gpu_node(f"n{i}", 8) for i in range(1, 4)])
    runs = [occupy(state, job(f"r{i}{k}", gpus=2), f"n{i}") for i in range(1, 4) for k in (1, 2, 3)]
    ws = Workspace(state, POLICY, 0.0)
    order = {kind: [list(bucket) for bucket in levels] for kind, levels in ws.index.levels.items()}
    version = ws.index.version
    victims = select_victims(job("w", gpus=8), ws, runs[::3] + runs[1::3], None, 0)
    assert victims == ()
    assert {k: [list(b) for b in levels] for k, levels in ws.index.levels.items()} == order
    assert ws.index.version == version


def test_a_gang_search_that_finds_no_room_leaves_the_view_as_it_was() -> None:
    """A gang of two whole nodes, with victims on one node while the other free node's
    cores are held by a job that cannot be stopped: the GPUs alone would do, the room
    does not, and the search leaves the view as it found it (and pristine, so what is
    known to fail in the state is still used for the rest of the cycle)."""
    state = new_state(POLICY, [gpu_node(f"n{i}", 8) for i in range(1, 4)])
    runs = [occupy(state, job(f"a{k}", gpus=2), "n1") for k in range(4)]
    occupy(state, job("cores", cpus=32, preemptible=False), "n2")
    occupy(state, job("whole", gpus=8, preemptible=False), "n3")
    ws = Workspace(state, POLICY, 0.0)
    order = {kind: [list(bucket) for bucket in levels] for kind, levels in ws.index.levels.items()}
    version = ws.index.version
    gang = job("w", gpus=8, replicas=2)
    assert _gpus_could_hold(gang, ws, runs)
    assert select_victims(gang, ws, runs, None, 0) == ()
    assert {k: [list(b) for b in levels] for k, levels in ws.index.levels.items()} == order
    assert ws.index.version == version
    assert ws.pristine


def test_the_srtf_columns_kept_in_place_equal_columns_built_afresh() -> None:
    """The oracle's per-job figures, kept between looks while jobs start, stop and start
    again (a new run of the same id), jobs without a known end among them, hold the
    same runs in the same order with the same figures as columns built at once."""
    rng = random.Random(16)
    state = new_state(POLICY, [gpu_node(f"n{i}", 8) for i in range(6)])
    kept = _Ends()
    now = 0.0
    for _ in range(400):
        now += rng.choice((0.0, 5.0, 600.0))
        chosen = f"j{rng.randrange(30)}"
        if chosen in state.running:
            state.release(chosen)
        if chosen not in state.running and rng.random() < 0.7:
            gpus = rng.choice((1, 2, 4))
            free = [n for n, s in state.nodes.items() if len(s.free_gpus["A100"]) >= gpus]
            if free:
                estimate = rng.choice((None, 3600.0, 7200.0))
                occupy(state, job(chosen, gpus=gpus, estimate=estimate), rng.choice(free), now)
        if rng.random() < 0.4:
            kept.update(state)
            fresh = _Ends()
            fresh.update(state)
            assert kept.ids == fresh.ids
            assert all(a is b for a, b in zip(kept.runs, fresh.runs, strict=True))
            for column in ("costs", "rates", "starts"):
                assert getattr(kept, column).tolist() == getattr(fresh, column).tolist()
