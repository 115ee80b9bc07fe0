from __future__ import annotations

import pytest

from aios.errors import InvalidInput, UnknownPolicy
from aios.scheduler import available_policies, make_policy
from tests.scheduler.harness import ALL_POLICIES


def test_available_policies_lists_every_shipped_policy() -> None:
    """The shipped policies are registered, sorted; the clairvoyant bound is not among
    those a live cluster may run."""
    assert available_policies() == [
        "drf",
        "fifo",
        "las",
        "learned",
        "oracle-srtf",
        "priority",
        "sjf",
    ]
    assert available_policies(live=True) == ["drf", "fifo", "las", "learned", "priority", "sjf"]


@pytest.mark.parametrize("spec", ALL_POLICIES)
def test_make_policy_names_the_policy_after_its_spec(spec: str) -> None:
    """A policy built from a spec carries the spec as its name."""
    assert make_policy(spec).name == spec


@pytest.mark.parametrize(
    ("spec", "strict", "backfill"),
    [
        ("fifo", True, False),
        ("fifo+backfill", True, True),
        ("priority", True, False),
        ("priority+backfill", True, True),
        ("drf", False, False),
        ("las", False, False),
        ("sjf", False, False),
    ],
)
def test_only_fifo_and_priority_keep_a_strict_order(
    spec: str, strict: bool, backfill: bool
) -> None:
    """fifo and priority are strict (a blocked head blocks), with backfill as an option."""
    policy = make_policy(spec)
    assert (policy.strict, policy.backfill) == (strict, backfill)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lottery", "unknown policy"),
        ("fifo+turbo", "unknown option"),
        ("las+backfill", "backfill"),
        ("drf+backfill", "backfill"),
        ("sjf+backfill", "backfill"),
        ("fifo+binpack+spread", "binpack or spread"),
    ],
)
def test_make_policy_rejects_bad_specs(spec: str, message: str) -> None:
    """Unknown names or options, backfill outside fifo/priority and binpack with spread are
    UnknownPolicy (an InvalidInput) naming what is wrong."""
    with pytest.raises(UnknownPolicy, match=message):
        make_policy(spec)
    assert issubclass(UnknownPolicy, InvalidInput)


def test_make_policy_tolerates_spaces_around_parts() -> None:
    """Whitespace around the name and options is ignored."""
    assert make_policy(" fifo + backfill ").backfill
