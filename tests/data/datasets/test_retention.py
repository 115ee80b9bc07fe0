"""Retention as restic's ``forget`` applies it, table-driven over synthetic snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aios.data.model import Snapshot
from aios.data.retention import Policy, apply_policy
from aios.errors import InvalidInput

START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def snapshot(name: str, hours: float, dataset: str = "digits") -> Snapshot:
    """A dataset version ``name`` taken ``hours`` after START."""
    return Snapshot(
        id=name,
        time=START + timedelta(hours=hours),
        tree="t",
        paths=("/src",),
        meta={"dataset": dataset, "version": 1},
    )


# Two a day for three days: a1 a2 on day 1, b1 b2 on day 2, c1 c2 on day 3.
HISTORY = [
    snapshot(f"{day}{n}", hours=24 * i + 4 * n) for i, day in enumerate("abc") for n in (1, 2)
]


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        (Policy(keep_last=1), {"c2"}),
        (Policy(keep_last=3), {"c2", "c1", "b2"}),
        (Policy(keep_daily=2), {"c2", "b2"}),
        (Policy(keep_daily=10), {"c2", "b2", "a2"}),
        (Policy(keep_last=2, keep_daily=3), {"c2", "c1", "b2", "a2"}),
        (Policy(keep_last=100), {s.id for s in HISTORY}),
    ],
)
def test_policy_keeps_what_restic_keeps(policy: Policy, kept: set[str]) -> None:
    verdict = apply_policy(HISTORY, policy)

    assert {s.id for s in verdict.keep} == kept
    assert {s.id for s in verdict.remove} == {s.id for s in HISTORY} - kept
    assert [s.time for s in verdict.remove] == sorted(
        (s.time for s in verdict.remove), reverse=True
    )


def test_each_dataset_is_its_own_group() -> None:
    history = [snapshot("x1", 0, "x"), snapshot("x2", 1, "x"), snapshot("y1", 2, "y")]

    verdict = apply_policy(history, Policy(keep_last=1))

    assert {s.id for s in verdict.keep} == {"x2", "y1"}


@pytest.mark.parametrize(
    "arguments", [{}, {"keep_last": -1}, {"keep_last": 0, "keep_daily": 0}, {"keep_daily": -2}]
)
def test_no_policy_or_a_negative_count_is_refused(arguments: dict[str, int]) -> None:
    with pytest.raises(InvalidInput, match="keep"):
        Policy(**arguments)
