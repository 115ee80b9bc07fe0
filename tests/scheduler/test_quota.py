from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aios.errors import InvalidInput
from aios.resources import Resources
from aios.scheduler import ClusterState, Queue, check_quota, make_policy
from aios.scheduler.plugins.quota import Quota, _well_within
from aios.scheduler.queue import Usage, is_borrowing
from aios.scheduler.workspace import Workspace

GPU1 = Resources(gpus=1)


def test_a_queue_without_quota_admits_anything() -> None:
    """``nominal=None`` means no limit at all."""
    verdict = check_quota(Queue("q"), Resources(10**6, 10**12, 1000), {}, ())
    assert verdict.ok and not verdict.borrows


@pytest.mark.parametrize(("used", "ok"), [(0, True), (1, True), (2, False)])
def test_without_a_cohort_usage_may_reach_but_not_pass_nominal(used: int, ok: bool) -> None:
    """Alone, a queue admits a request while its usage plus the request stays within nominal."""
    queue = Queue("q", nominal={"gpu": 2})
    verdict = check_quota(queue, GPU1, {"q": {"gpu": used}}, ())
    assert verdict.ok is ok
    assert verdict.borrows is False
    if not ok:
        assert "gpu" in verdict.reason


def test_a_quota_limits_only_the_resources_it_names() -> None:
    """Resources the nominal quota does not name are not limited."""
    queue = Queue("q", nominal={"gpu": 1})
    assert check_quota(queue, Resources(cpu=10**6, memory=10**12), {}, ()).ok


def test_borrowing_from_the_cohort_is_allowed_and_reported() -> None:
    """In a cohort a queue may pass its nominal quota while the cohort has idle quota."""
    a = Queue("a", nominal={"gpu": 1}, cohort="c")
    b = Queue("b", nominal={"gpu": 3}, cohort="c")
    usage: dict[str, Usage] = {"a": {"gpu": 1}, "b": {"gpu": 1}}
    verdict = check_quota(a, GPU1, usage, (a, b))
    assert verdict.ok and verdict.borrows


@pytest.mark.parametrize(("used", "ok"), [(2, True), (3, True), (4, False)])
def test_borrowing_stops_at_the_borrowing_limit(used: int, ok: bool) -> None:
    """A queue may go above nominal by at most its borrowing limit."""
    a = Queue("a", nominal={"gpu": 2}, cohort="c", borrowing_limit={"gpu": 2})
    b = Queue("b", nominal={"gpu": 100}, cohort="c")
    assert check_quota(a, GPU1, {"a": {"gpu": used}}, (a, b)).ok is ok


@pytest.mark.parametrize(("b_used", "ok"), [(2, True), (3, False)])
def test_the_cohort_never_passes_the_sum_of_its_nominal_quotas(b_used: int, ok: bool) -> None:
    """Every member's admission keeps the cohort's usage within its members' nominal sum,
    even for a queue within its own quota."""
    a = Queue("a", nominal={"gpu": 2}, cohort="c")
    b = Queue("b", nominal={"gpu": 2}, cohort="c")
    usage: dict[str, Usage] = {"a": {"gpu": 1}, "b": {"gpu": b_used}}
    assert check_quota(a, GPU1, usage, (a, b)).ok is ok


def test_a_gang_counts_whole() -> None:
    """The quota check sees the whole request of a gang, not one replica."""
    queue = Queue("q", nominal={"gpu": 3})
    assert not check_quota(queue, GPU1 * 4, {}, ()).ok


def test_is_borrowing_compares_usage_with_nominal() -> None:
    """A queue borrows when it uses more than nominal of some resource."""
    queue = Queue("q", nominal={"gpu": 2, "cpu": 4000})
    assert not is_borrowing(queue, {"q": {"gpu": 2, "cpu": 4000}})
    assert is_borrowing(queue, {"q": {"gpu": 3}})
    assert not is_borrowing(Queue("free"), {"free": {"gpu": 100}})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name"),
        ({"name": "q", "weight": 0.0}, "weight"),
        ({"name": "q", "nominal": {"gpu": -1}}, "nominal gpu"),
        ({"name": "q", "borrowing_limit": {"cpu": -1}}, "borrowing_limit cpu"),
    ],
)
def test_queue_rejects_bad_configuration(kwargs: dict[str, object], message: str) -> None:
    """An unnamed queue, a non-positive weight or a negative quota is InvalidInput."""
    with pytest.raises(InvalidInput, match=message):
        Queue(**kwargs)  # type: ignore[arg-type]


@st.composite
def _queues_and_usage(draw: st.DrawFn) -> tuple[list[Queue], dict[str, dict[str, int]]]:
    cohort = draw(st.sampled_from([None, "c"]))
    queues = []
    usage: dict[str, dict[str, int]] = {}
    for i in range(draw(st.integers(1, 3))):
        limit = draw(st.none() | st.integers(0, 4))
        queues.append(
            Queue(
                f"q{i}",
                nominal={"gpu": draw(st.integers(0, 8)), "cpu": 1000 * draw(st.integers(0, 8))},
                cohort=cohort if i == 0 else draw(st.sampled_from([None, "c"])),
                borrowing_limit={} if limit is None else {"gpu": limit},
            )
        )
        usage[f"q{i}"] = {"gpu": draw(st.integers(0, 10)), "cpu": 1000 * draw(st.integers(0, 10))}
    return queues, usage


@settings(deadline=None, max_examples=300)
@given(setup=_queues_and_usage(), gpus=st.integers(0, 6), cpus=st.integers(0, 6))
def test_the_quick_quota_pass_agrees_with_check_quota(
    setup: tuple[list[Queue], dict[str, dict[str, int]]], gpus: int, cpus: int
) -> None:
    """The quota plugin answers a passing verdict without building reasons only when
    check_quota would pass it too, and always when it would."""
    queues, usage = setup
    state = ClusterState([], queues)
    state.usage = usage
    state.set_queue(queues[0])  # sums the cohorts' usage again
    ws = Workspace(state, make_policy("drf"), 0.0)
    queue = queues[0]
    request = Resources(cpu=1000 * cpus, gpus=gpus)
    assert queue.nominal is not None
    amounts = tuple(request.get(resource) for resource in queue.nominal)
    numbers = Quota()._usage_numbers(ws, queue)
    members = state.cohort_members(queue)
    assert (
        _well_within(ws, queue, amounts, numbers) == check_quota(queue, request, usage, members).ok
    )
