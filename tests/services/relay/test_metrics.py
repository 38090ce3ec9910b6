"""The proxy's metrics collector writes what prometheus-client's Counter and Histogram
would: the same names, labels, cumulative buckets, sums and counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from broker.services.relay.metrics import ProxyMetrics


def test_calls_durations_and_bytes_are_exposed_as_the_library_would() -> None:
    collected = ProxyMetrics(buckets=(0.01, 0.1))
    registry = CollectorRegistry()
    registry.register(collected)
    collected.observe(("stripe", "api.stripe.com", "200"), 0.005, 0, 120)
    collected.observe(("stripe", "api.stripe.com", "200"), 0.01, 10, 30)  # le is inclusive
    collected.observe(("stripe", "api.stripe.com", "404"), 0.5, 0, 7)
    value = registry.get_sample_value
    host = {"connector": "stripe", "host": "api.stripe.com"}
    assert value("broker_proxy_requests_total", {**host, "status": "200"}) == 2
    assert value("broker_proxy_requests_total", {**host, "status": "404"}) == 1
    duration = "broker_proxy_request_duration_seconds"
    assert value(f"{duration}_bucket", {**host, "le": "0.01"}) == 2
    assert value(f"{duration}_bucket", {**host, "le": "0.1"}) == 2
    assert value(f"{duration}_bucket", {**host, "le": "+Inf"}) == 3
    assert value(f"{duration}_count", host) == 3
    assert value(f"{duration}_sum", host) == 0.515
    assert value("broker_proxy_bytes_total", {**host, "direction": "sent"}) == 10
    assert value("broker_proxy_bytes_total", {**host, "direction": "received"}) == 157
    text = generate_latest(registry).decode()
    assert "# TYPE broker_proxy_requests_total counter" in text
    assert "# TYPE broker_proxy_request_duration_seconds histogram" in text
