"""The learned policy's model: Gittins keys over the service finished jobs needed, by
class, least attained service first while nothing is known."""

from __future__ import annotations

import random

import pytest

from aios.resources import Resources
from aios.scheduler import Job, make_live_policy, make_policy
from aios.scheduler.learning import ServiceHistory, gittins_key


def job(name: str = "train", queue: str = "a", gpus: int = 1, attained: float = 0.0) -> Job:
    return Job(
        f"{name}-{queue}-{gpus}",
        Resources(1000, 2**20, gpus, None),
        queue=queue,
        name=name,
        attained_service=attained,
    )


@pytest.mark.parametrize(
    ("samples", "attained", "key"),
    [
        ([100.0] * 5, 0.0, 100.0),  # a known size: the key is what is left
        ([100.0] * 5, 40.0, 60.0),
        ([100.0] * 5, 100.0, None),  # outlived every sample
        # Half need 10, half 1000: serving 10 finishes half for 10 each: 20 per job.
        ([10.0, 10.0, 1000.0, 1000.0], 0.0, 20.0),
        # Once past 10, only the long ones are left: 990 more each.
        ([10.0, 10.0, 1000.0, 1000.0], 10.0, 990.0),
    ],
)
def test_gittins_key(samples: list[float], attained: float, key: float | None) -> None:
    assert gittins_key(samples, attained) == (None if key is None else pytest.approx(key))


def test_without_history_the_key_is_the_attained_services_level() -> None:
    """Least attained service first, by the level of the grid it has reached (so the
    key, like every class's, changes only where ``next_change`` says), until enough
    jobs of a class have finished."""
    history = ServiceHistory(min_samples=3)
    level = 30.0 * 1.5**6  # 341.7: the grid's level at or below 500
    assert history.key(job(attained=500.0), 500.0) == level
    assert history.key(job(), level) == level
    assert history.key(job(), 30.0 * 1.5**7 - 1.0) == level
    assert history.key(job(), 30.0 * 1.5**7) > level
    assert history.next_change(job(), 500.0) == 30.0 * 1.5**7
    for _ in range(2):
        history.observe(job(), 100.0)
    assert history.key(job(), 0.0) == 0.0  # two samples are not enough


def test_the_most_specific_class_that_knows_enough_speaks() -> None:
    """A job's own (queue, GPUs, name) class answers once it has enough samples; until
    then the wider classes (here every 1-GPU job of the queue) do."""
    history = ServiceHistory(min_samples=3)
    for _ in range(3):
        history.observe(job(name="other"), 5000.0)
    assert history.key(job(name="train"), 0.0) == pytest.approx(5000.0)
    for _ in range(3):
        history.observe(job(name="train"), 60.0)
    assert history.key(job(name="train"), 0.0) == pytest.approx(60.0)
    assert history.key(job(name="other"), 0.0) == pytest.approx(5000.0)


def test_the_window_forgets_the_oldest() -> None:
    history = ServiceHistory(window=4, min_samples=2)
    for service in (9000.0,) * 4 + (30.0,) * 4:
        history.observe(job(), service)
    assert history.key(job(), 0.0) == pytest.approx(30.0)


def test_the_learned_policy_runs_live_and_learns_only_when_told() -> None:
    """``learned`` is no oracle: a live control plane may run it; each policy built
    starts with an empty history of its own."""
    first, second = make_live_policy("learned"), make_policy("learned")
    assert first.learner is not None and second.learner is not None
    assert first.learner is not second.learner
    first.learner.observe(job(), 10.0)
    assert isinstance(second.learner, ServiceHistory) and second.learner.observed == 0


def test_a_name_speaks_for_its_jobs_at_sizes_it_has_not_run_at() -> None:
    """The (queue, name) class keeps run times (service per GPU) and scales them to the
    asking job's size: a script seen on 1 GPU for 100 s is expected to need 400
    GPU-seconds on 4 GPUs, before any other 4-GPU job of the queue is asked."""
    history = ServiceHistory(min_samples=3)
    for _ in range(3):
        history.observe(job(name="other", gpus=4), 9000.0)
        history.observe(job(name="train", gpus=1), 100.0)
    assert history.key(job(name="train", gpus=4), 0.0) == pytest.approx(400.0)
    # 180 GPU-seconds in: 45 s of its run, a level of the grid: 55 s (220) are left.
    assert history.key(job(name="train", gpus=4), 180.0) == pytest.approx(220.0)
    # Its own size's class, once it knows enough, comes first.
    for _ in range(3):
        history.observe(job(name="train", gpus=4), 40.0)
    assert history.key(job(name="train", gpus=4), 0.0) == pytest.approx(40.0)


def test_the_key_changes_only_where_next_change_says() -> None:
    """Between ``attained`` and ``next_change(attained)`` the key is the same; the
    levels are those of the whole service's grid and of the per-GPU grid times GPUs."""
    history = ServiceHistory(min_samples=2)
    for service in (50.0, 500.0, 5000.0, 50_000.0):
        history.observe(job(name="train", gpus=1), service)
        history.observe(job(name="eval", gpus=4), service)
    wide = job(name="train", gpus=4)
    attained = 0.0
    while attained < 10_000.0:
        change = history.next_change(wide, attained)
        assert change > attained
        key = history.key(wide, attained)
        for step in (0.25, 0.5, 0.999):
            assert history.key(wide, attained + step * (change - attained)) == key
        attained = change
    assert history.next_change(job(gpus=4), 0.0) == 30.0  # no name: the whole grid only


def test_while_the_revision_holds_every_key_answers_as_it_did() -> None:
    """Keys remembered at one revision equal the keys asked afresh for as long as the
    revision holds, whatever was learned meanwhile; and it does not change with every
    job learned (what makes it worth remembering by)."""
    rng = random.Random(7)
    history = ServiceHistory(window=64)
    shapes = [
        job(name=name, queue=queue, gpus=gpus)
        for name in ("", "train", "eval")
        for queue in ("a", "b")
        for gpus in (1, 2, 8)
    ]
    remembered: dict[tuple[int, float], float] = {}
    revision = history.revision
    changes = 0
    for _ in range(3000):
        history.observe(rng.choice(shapes), 10.0 ** rng.uniform(1, 6))
        if history.revision != revision:
            revision = history.revision
            remembered.clear()
            changes += 1
        for _ in range(4):
            shape = rng.randrange(len(shapes))
            attained = rng.choice((0.0, 100.0, 5_000.0, 200_000.0))
            key = history.key(shapes[shape], attained)
            assert remembered.setdefault((shape, attained), key) == key
    assert 0 < changes < 3000 // 2


@pytest.mark.parametrize("count", [1, 8, 40, 100, 512])
def test_a_whole_table_is_the_keys_level_by_level(count: int) -> None:
    """gittins_table gives, at every level of the grid, exactly (to the last bit) what
    gittins_key gives there, and None where too few samples are above the level."""
    import random
    from bisect import bisect_right

    from aios.scheduler.learning import LEVELS, gittins_table

    rng = random.Random(count)
    for _ in range(20):
        samples = sorted(
            rng.choice((10.0 ** rng.uniform(0, 8), float(rng.randrange(300)))) for _ in range(count)
        )
        table = gittins_table(samples, LEVELS, 3)
        for level, got in zip(LEVELS, table, strict=True):
            enough = len(samples) - bisect_right(samples, level) >= 3
            assert got == (gittins_key(samples, level) if enough else None)
