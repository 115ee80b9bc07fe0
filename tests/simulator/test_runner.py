"""The replay: per-tenant GPU series and the share fairness they measure."""

from __future__ import annotations

from aios.simulator import ClusterSpec, simulate
from aios.simulator.metrics import BusyIntegral
from aios.simulator.traces import TraceJob


def unbalanced_trace() -> list[TraceJob]:
    """Tenant ``big`` floods one 8-GPU node with 4-GPU jobs; ``small`` asks a moment
    later for a few 1-GPU jobs."""
    big = [TraceJob(f"big-{i}", 0.0, 100.0, 4, None, None, "big") for i in range(40)]
    small = [TraceJob(f"small-{i}", 1.0, 100.0, 1, None, None, "small") for i in range(8)]
    return big + small


def test_tenant_series_add_up_to_the_busy_gpus() -> None:
    """At every moment the tenants' GPUs sum to the cluster's busy GPUs."""
    result = simulate(unbalanced_trace(), ClusterSpec(nodes=1, gpus_per_node=8), "drf")
    assert set(result.tenant_samples) == {"big", "small"}
    tenants = [BusyIntegral(s) for s in result.tenant_samples.values()]
    busy = BusyIntegral(result.busy_samples)
    end = result.busy_samples[-1][0]
    for k in range(1, 50):
        low, high = end * (k - 1) / 50, end * k / 50
        assert sum(t.mean(low, high) for t in tenants) == busy.mean(low, high)


def test_drf_honours_shares_that_fifo_ignores() -> None:
    """Under fifo the small tenant waits behind the whole flood; drf gives it its share
    at once, so its share fairness is higher."""
    spec = ClusterSpec(nodes=1, gpus_per_node=8)
    fifo = simulate(unbalanced_trace(), spec, "fifo").metrics
    drf = simulate(unbalanced_trace(), spec, "drf").metrics
    assert drf.jain_index > fifo.jain_index
    assert drf.jain_index > 0.95
