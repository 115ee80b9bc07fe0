"""The learned policy's preemption ranking, kept up to date in place as jobs start,
stop and start again, against one worked out from scratch."""

from __future__ import annotations

import random

import pytest

from aios.scheduler import make_policy
from aios.scheduler.learning import ServiceHistory
from aios.scheduler.plugins.gittins import GittinsPreemption, _RunningKeys
from aios.scheduler.workspace import Workspace
from tests.scheduler.harness import gpu_node, job, new_state, occupy

POLICY = make_policy("las")


@pytest.mark.parametrize("named", [False, True])
def test_the_ranking_kept_in_place_equals_one_worked_out_afresh(named: bool) -> None:
    """Jobs bound, released and bound again (a new run of the same id) between looks,
    with time passing: the ranking kept between looks names the same runs in the same
    order with the same keys as a ranking built at once. (The history knows every class
    well past any job's service here, so every key is its grid level's; named jobs are
    answered by their name's class at every size, whose grid is in service per GPU.)"""
    rng = random.Random(18)
    history = ServiceHistory()
    for i in range(600):
        done = job(f"done-{i}", gpus=(1, 2, 4)[i % 3], name="train" if named else "")
        history.observe(done, 10.0 ** rng.uniform(1, 9))
    state = new_state(POLICY, [gpu_node(f"n{i}", 8) for i in range(6)])
    kept = _RunningKeys()
    ids = [f"j{i}" for i in range(30)]
    # 3 GPUs the history never saw: only the name's class (or every job's) speaks.
    name = "train" if named else ""
    now = 0.0
    for _ in range(300):
        now += rng.choice((0.0, 1.0, 90.0, 4000.0))
        running = state.running
        chosen = rng.choice(ids)
        if chosen in running and rng.random() < 0.6:
            state.release(chosen)
            if rng.random() < 0.5:  # started again at once: another run of the same id
                gpus = rng.choice((1, 2, 3, 4))
                free = [n for n, s in state.nodes.items() if len(s.free_gpus["A100"]) >= gpus]
                if free:
                    occupy(state, job(chosen, gpus=gpus, name=name), rng.choice(free), now)
        elif chosen not in running:
            gpus = rng.choice((1, 2, 3, 4))
            free = [n for n, s in state.nodes.items() if len(s.free_gpus["A100"]) >= gpus]
            if free:
                occupy(state, job(chosen, gpus=gpus, name=name), rng.choice(free), now)
        if rng.random() < 0.5:
            keys, ranked = kept.update(state, now, history)
            fresh_keys, fresh_ranked = _RunningKeys().update(state, now, history)
            assert [r.job.id for r in ranked] == [r.job.id for r in fresh_ranked]
            assert all(a is b for a, b in zip(ranked, fresh_ranked, strict=True))
            assert keys == fresh_keys


def test_while_nothing_is_known_the_kept_ranking_equals_a_fresh_one() -> None:
    """With no history every key is least attained service by grid level: a job's key
    kept since an earlier look is the one a fresh look finds (it once kept the service
    of the earlier look, below the fresh one)."""
    history = ServiceHistory()
    state = new_state(POLICY, [gpu_node("n1", 8)])
    occupy(state, job("a", gpus=4), "n1", 0.0)
    kept = _RunningKeys()
    kept.update(state, 31.0, history)
    occupy(state, job("b", gpus=1), "n1", 31.0)  # a start: the kept ranking looks again
    for now in (35.0, 200.0, 5000.0):
        keys, ranked = kept.update(state, now, history)
        fresh_keys, fresh_ranked = _RunningKeys().update(state, now, history)
        assert keys == fresh_keys
        assert [r.job.id for r in ranked] == [r.job.id for r in fresh_ranked]


def test_keys_kept_in_the_state_are_not_taken_from_another_history() -> None:
    """A learned policy switched to afresh brings a new history, whose revision may be
    the old one's: the waiting job's key and the running ranking come from the new."""
    state = new_state(POLICY, [gpu_node("n1", 8)])
    short, long = ServiceHistory(), ServiceHistory()
    for i in range(8):
        short.observe(job(f"s{i}", gpus=1, name="x"), 100.0)
        long.observe(job(f"l{i}", gpus=1, name="x"), 100_000.0)
    assert short.revision == long.revision and short.observed == long.observed
    waiting = job("w", gpus=1, name="x")
    occupy(state, job("r", gpus=1, name="x"), "n1", 0.0)
    ws = Workspace(state, POLICY, 50.0)
    assert GittinsPreemption(short)._key(waiting, state) == short.key(waiting, 0.0)
    GittinsPreemption(short)._ranking(ws, 50.0)
    assert GittinsPreemption(long)._key(waiting, state) == long.key(waiting, 0.0)
    keys, _ = GittinsPreemption(long)._ranking(Workspace(state, POLICY, 50.0), 50.0)
    assert keys == [-long.key(job("r", gpus=1, name="x"), 50.0)]
