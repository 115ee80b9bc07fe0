"""The serving metrics: what a model version's numbers look like in the Prometheus text
format, histogram buckets cumulative, a version served again counting on."""

from __future__ import annotations

from aios.serving.batching import BatchRecord
from aios.serving.metrics import ServingMetrics


def _samples(metrics: ServingMetrics) -> dict[str, float]:
    lines = metrics.exposition().decode().splitlines()
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in lines if not line.startswith("#"))
    }


def test_requests_errors_latency_and_batches_are_exposed_per_version() -> None:
    metrics = ServingMetrics()
    model = metrics.model("digits", "1")
    model.requests += 3
    model.in_flight += 1
    model.error(400)
    model.error(400)
    model.error(503)
    for seconds in (0.0004, 0.003, 0.7):
        model.latency.observe(seconds)
    model.observe_batch(
        BatchRecord(rows=3, requests=2, queue_seconds=(0.001, 0.0015), run_seconds=0.01)
    )

    samples = _samples(metrics)
    labels = 'model="digits",version="1"'
    assert samples[f"aios_inference_requests_total{{{labels}}}"] == 3
    assert samples[f"aios_inference_in_flight{{{labels}}}"] == 1
    assert samples[f'aios_inference_errors_total{{code="400",{labels}}}'] == 2
    assert samples[f'aios_inference_errors_total{{code="503",{labels}}}'] == 1
    latency = "aios_inference_request_seconds"
    assert samples[f'{latency}_bucket{{le="0.0005",{labels}}}'] == 1
    assert samples[f'{latency}_bucket{{le="0.005",{labels}}}'] == 2
    assert samples[f'{latency}_bucket{{le="0.5",{labels}}}'] == 2
    assert samples[f'{latency}_bucket{{le="1.0",{labels}}}'] == 3
    assert samples[f'{latency}_bucket{{le="+Inf",{labels}}}'] == 3
    assert samples[f"{latency}_count{{{labels}}}"] == 3
    assert abs(samples[f"{latency}_sum{{{labels}}}"] - 0.7034) < 1e-9
    assert samples[f'aios_inference_batch_size_bucket{{le="2.0",{labels}}}'] == 0
    assert samples[f'aios_inference_batch_size_bucket{{le="4.0",{labels}}}'] == 1
    assert samples[f"aios_inference_queue_seconds_count{{{labels}}}"] == 2


def test_a_value_on_a_bound_falls_in_that_bucket() -> None:
    """Prometheus buckets are "less than or equal": 0.001 s counts under le="0.001"."""
    metrics = ServingMetrics()
    metrics.model("m", "1").latency.observe(0.001)
    assert (
        _samples(metrics)['aios_inference_request_seconds_bucket{le="0.001",model="m",version="1"}']
        == 1
    )


def test_a_version_served_again_counts_on() -> None:
    metrics = ServingMetrics()
    metrics.model("m", "1").requests += 2
    assert metrics.model("m", "1").requests == 2
    metrics.model("m", "2").requests += 1
    samples = _samples(metrics)
    assert samples['aios_inference_requests_total{model="m",version="1"}'] == 2
    assert samples['aios_inference_requests_total{model="m",version="2"}'] == 1
