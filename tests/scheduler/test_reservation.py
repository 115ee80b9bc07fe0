"""The EASY reservation and the search kept with it across cycles.

A kept search stands while the jobs that end after the job completing the reservation
stay the same; whatever ends or starts before it changes nothing, anything else brings
a new search.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aios.resources import Node
from aios.scheduler import ClusterState, CycleResult, Job, JobState, Queue, make_policy, reservation
from aios.scheduler.reservation import Reservation, find_reservation, reserve
from aios.scheduler.workspace import Workspace
from tests.scheduler.harness import GI, gpu_node, job, new_state, occupy, replay

POLICY = make_policy("fifo+backfill")


def _view(state: ClusterState, now: float = 0.0) -> Workspace:
    return Workspace(state, POLICY, now)


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the jobs a reservation search ran for, in order."""
    ran: list[str] = []
    search: Callable[..., tuple[Reservation | None, int]] = reservation._search

    def counted(ws: Workspace, job: Job, ending: list[object]) -> tuple[Reservation | None, int]:
        ran.append(job.id)
        return search(ws, job, ending)

    monkeypatch.setattr(reservation, "_search", counted)
    return ran


def _two_nodes() -> tuple[ClusterState, Job]:
    """n1 runs a (4 GPUs, ends at 100) and b (4 GPUs, ends at 200), n2 runs c (8 GPUs,
    ends at 300); the head wants two whole nodes, so it is reserved both from 300."""
    state = new_state(POLICY, [gpu_node("n1", 8), gpu_node("n2", 8)])
    occupy(state, job("a", gpus=4, estimate=100), "n1")
    occupy(state, job("b", gpus=4, estimate=200), "n1")
    occupy(state, job("c", gpus=8, estimate=300), "n2")
    head = job("head", gpus=8, replicas=2, submit=1)
    state.submit(head)
    return state, head


def test_a_reservation_waits_for_the_job_that_completes_the_room() -> None:
    """The shadow time is the end of the job whose end first leaves room for every
    replica, and the reservation names the nodes that hold them."""
    state, head = _two_nodes()
    assert find_reservation(_view(state), head) == Reservation(
        "head", 300.0, frozenset({"n1", "n2"})
    )


def test_a_kept_search_stands_while_jobs_ending_earlier_come_and_go(searches: list[str]) -> None:
    """Jobs that end, or start and end, before the job completing the room leave the
    reservation as it was: no new search."""
    state, head = _two_nodes()
    first = reserve(_view(state), head)
    state.finish("a", JobState.SUCCEEDED)
    occupy(state, job("d", gpus=2, estimate=250), "n1", now=10)
    kept = reserve(_view(state, 10), head)
    assert searches == ["head"]
    assert kept == first == find_reservation(_view(state, 10), head)


def test_a_job_ending_after_the_reservation_brings_a_new_search(searches: list[str]) -> None:
    """A job that starts on the reserved room and ends after the shadow job moves the
    reservation: it is searched again, and the answer is the fresh one."""
    state, head = _two_nodes()
    reserve(_view(state), head)
    state.finish("a", JobState.SUCCEEDED)
    occupy(state, job("long", gpus=4, estimate=1000), "n1", now=10)
    moved = reserve(_view(state, 10), head)
    assert searches == ["head", "head"]
    assert moved == find_reservation(_view(state, 10), head)
    assert moved is not None and moved.shadow_time == 1010.0


def test_a_job_ending_later_off_the_reserved_nodes_leaves_the_reservation(
    searches: list[str],
) -> None:
    """A job that starts on a node the reservation does not use changes neither when
    nor where the head starts, however long it runs: no new search."""
    state = new_state(POLICY, [gpu_node("n1", 8), gpu_node("n2", 8), gpu_node("n3", 4)])
    occupy(state, job("a", gpus=4, estimate=100), "n1")
    occupy(state, job("b", gpus=4, estimate=200), "n1")
    occupy(state, job("c", gpus=8, estimate=300), "n2")
    head = job("head", gpus=8, submit=1)
    state.submit(head)
    first = reserve(_view(state), head)
    assert first == Reservation("head", 200.0, frozenset({"n1"}))
    occupy(state, job("long", gpus=4, estimate=10_000), "n3", now=10)
    kept = reserve(_view(state, 10), head)
    assert searches == ["head"]
    assert kept == first == find_reservation(_view(state, 10), head)


def test_a_shadow_job_ending_early_brings_a_new_search(searches: list[str]) -> None:
    """When the job completing the room ends before its estimate, the room is there
    sooner: the kept search no longer stands."""
    state, head = _two_nodes()
    reserve(_view(state), head)
    state.finish("c", JobState.SUCCEEDED)
    again = reserve(_view(state, 50), head)
    assert searches == ["head", "head"]
    assert again == find_reservation(_view(state, 50), head)
    assert again is not None and again.shadow_time == 200.0


def test_a_reservation_is_kept_per_job(searches: list[str]) -> None:
    """Another blocked job gets its own search, even on the same state."""
    state, head = _two_nodes()
    other = job("other", gpus=8, submit=2)
    state.submit(other)
    reserve(_view(state), head)
    found = reserve(_view(state), other)
    assert found == Reservation("other", 200.0, frozenset({"n1"}))
    assert searches == ["head", "other"]


def test_no_reservation_is_kept_until_something_runs(searches: list[str]) -> None:
    """A job larger than the whole cluster has no reservation; that stays known while jobs
    come and go, since their ends could only give back the cluster it did not fit."""
    state, _ = _two_nodes()
    huge = job("huge", gpus=8, replicas=3, submit=2)
    state.submit(huge)
    assert reserve(_view(state), huge) is None
    state.finish("b", JobState.SUCCEEDED)
    assert reserve(_view(state, 5), huge) is None
    assert searches == ["huge"]


@st.composite
def _cluster_and_jobs(draw: st.DrawFn) -> tuple[list[Node], list[Job], dict[str, float]]:
    nodes = [
        gpu_node(f"n{i}", draw(st.sampled_from([2, 4, 8])), cpus=32, memory=256 * GI)
        for i in range(draw(st.integers(1, 4)))
    ]
    jobs: list[Job] = []
    durations: dict[str, float] = {}
    for i in range(draw(st.integers(1, 16))):
        duration = float(draw(st.integers(1, 5000)))
        jobs.append(
            job(
                f"j{i:02d}",
                cpus=draw(st.integers(1, 4)),
                gpus=draw(st.sampled_from([1, 2, 4, 8])),
                replicas=draw(st.integers(1, 2)),
                submit=float(draw(st.sampled_from([0, 0, 60, 600])) * i),
                estimate=draw(st.sampled_from([duration, 2 * duration, None])),
            )
        )
        durations[jobs[-1].id] = duration
    return nodes, jobs, durations


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=_cluster_and_jobs())
def test_kept_searches_answer_as_a_fresh_search_would(
    scenario: tuple[list[Node], list[Job], dict[str, float]],
) -> None:
    """Through a random replay under fifo+backfill, the reservation of the first job
    still pending after each cycle, asked of the kept search, is the fresh search's."""
    nodes, jobs, durations = scenario

    def compare(state: ClusterState, result: CycleResult, now: float) -> None:
        for pending in list(state.pending.jobs())[:1]:
            kept = reserve(_view(state, now), pending)
            assert kept == find_reservation(_view(state, now), pending)

    replay("fifo+backfill", nodes, [Queue("default")], jobs, durations, observe=compare)


def test_a_room_complete_at_the_first_end_is_searched_again_when_an_earlier_end_comes(
    searches: list[str],
) -> None:
    """When the first job to end completed the room, the room before it was never
    counted: a job that starts and ends earlier may complete it sooner."""
    state = new_state(POLICY, [gpu_node("n1", 8), gpu_node("n2", 8)])
    occupy(state, job("a", gpus=4, estimate=100), "n1")
    occupy(state, job("c", gpus=8, estimate=300), "n2")
    small = job("small", gpus=4, submit=1)
    state.submit(small)
    assert reserve(_view(state), small) == Reservation("small", 100.0, frozenset({"n1"}))
    occupy(state, job("quick", gpus=4, estimate=40), "n1", now=10)
    again = reserve(_view(state, 10), small)
    assert searches == ["small", "small"]
    assert again == find_reservation(_view(state, 10), small)
    assert again == Reservation("small", 50.0, frozenset({"n1"}))
