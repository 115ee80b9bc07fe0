"""The autoscaler: up at once on load, down only after a quiet delay, within bounds."""

from __future__ import annotations

import pytest

from aios.deployments.autoscale import Autoscaler, ScalePolicy
from aios.errors import InvalidInput

POLICY = ScalePolicy(min_replicas=1, max_replicas=4, target=4, window=5, scale_down_delay=30)


def feed(scaler: Autoscaler, start: float, end: float, in_flight: float) -> None:
    t = start
    while t <= end:
        scaler.observe(t, in_flight)
        t += 1.0


def test_scales_up_as_soon_as_the_window_mean_asks() -> None:
    """Ten requests in flight at four per replica call for three replicas."""
    scaler = Autoscaler(POLICY)
    feed(scaler, 0, 5, 10)
    assert scaler.desired(5, current=1) == 3


def test_never_beyond_max_or_below_min() -> None:
    scaler = Autoscaler(POLICY)
    feed(scaler, 0, 5, 100)
    assert scaler.desired(5, current=1) == 4
    idle = Autoscaler(POLICY)
    feed(idle, 0, 60, 0)
    assert idle.desired(60, current=2) == 1


def test_scales_down_only_after_a_quiet_delay() -> None:
    """A lull shorter than the delay keeps the replicas; a longer one lets them go."""
    scaler = Autoscaler(POLICY)
    feed(scaler, 0, 10, 12)
    assert scaler.desired(10, current=3) == 3
    feed(scaler, 11, 30, 1)
    assert scaler.desired(30, current=3) == 3  # a sample 20 s ago still wanted 3
    feed(scaler, 31, 45, 1)
    assert scaler.desired(45, current=3) == 1


def test_not_watched_long_enough_to_scale_down() -> None:
    scaler = Autoscaler(POLICY)
    feed(scaler, 0, 3, 0)
    assert scaler.desired(3, current=2) == 2


def test_fixed_replicas_ignore_load() -> None:
    scaler = Autoscaler(ScalePolicy(min_replicas=2, max_replicas=2))
    feed(scaler, 0, 10, 50)
    assert scaler.desired(10, current=1) == 2


@pytest.mark.parametrize(
    ("lo", "hi", "target"), [(2, 1, 4.0), (0, 0, 4.0), (-1, 2, 4.0), (1, 2, 0.0)]
)
def test_bad_policies_are_refused(lo: int, hi: int, target: float) -> None:
    with pytest.raises(InvalidInput):
        ScalePolicy(min_replicas=lo, max_replicas=hi, target=target)
