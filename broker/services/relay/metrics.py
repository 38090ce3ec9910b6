"""The egress proxy's metrics per forwarded call, kept as `broker.metrics.RequestMetrics`
keeps the HTTP ones: one dict of plain lists, written out by a custom collector.

Recording runs on every proxied call: one dict lookup, a bisect and four additions. The
library's Counter and Histogram took a lock and checked their arguments four times a call
(three counters and a histogram), a measurable share of every proxied call (callgrind:
docs/benchmarks.md, "Egress proxy"). Refusals, rare, keep a library Counter
(`observed.REFUSALS`).

The series exposed, names and labels as before:
`broker_proxy_requests_total{connector,host,status}`,
`broker_proxy_request_duration_seconds{connector,host}` and
`broker_proxy_bytes_total{connector,host,direction}`."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from broker import metrics

Key = tuple[str, str, str]
"""(connector, host pattern, status or error code)."""


class ProxyMetrics:
    def __init__(self, buckets: tuple[float, ...] = metrics.LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._bounds = [floatToGoString(b) for b in (*buckets, math.inf)]  # type: ignore[no-untyped-call]
        # per key: counts per bucket and +Inf (not cumulative), then seconds, sent, received
        self.series: dict[Key, list[float]] = {}

    def observe(self, key: Key, seconds: float, sent: int, received: int) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0.0] * (len(self.buckets) + 4)
        series[bisect.bisect_left(self.buckets, seconds)] += 1
        series[-3] += seconds
        series[-2] += sent
        series[-1] += received

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "broker_proxy_requests",
            "Calls the egress proxy forwarded, by connector, host pattern (from "
            "permissions.http) and the provider's status (or the broker's error code when "
            "there was no answer: provider_error, needs_reauth).",
            labels=("connector", "host", "status"),
        )
        by_host: dict[tuple[str, str], list[float]] = {}
        for (connector, host, status), series in self.series.items():
            calls.add_metric((connector, host, status), sum(series[:-3]))
            merged = by_host.setdefault((connector, host), [0.0] * len(series))
            for i, value in enumerate(series):
                merged[i] += value
        duration = HistogramMetricFamily(
            "broker_proxy_request_duration_seconds",
            "Time from a proxied call's arrival to the end of the provider's answer relayed, "
            "by connector and host pattern.",
            labels=("connector", "host"),
        )
        relayed = CounterMetricFamily(
            "broker_proxy_bytes",
            "Body bytes relayed by the egress proxy, by connector, host pattern and direction "
            "(sent: to the provider; received: from it).",
            labels=("connector", "host", "direction"),
        )
        for labels, merged in by_host.items():
            cumulative = list(itertools.accumulate(merged[:-3]))
            buckets = list(zip(self._bounds, cumulative, strict=True))
            duration.add_metric(labels, buckets, merged[-3])
            relayed.add_metric((*labels, "sent"), merged[-2])
            relayed.add_metric((*labels, "received"), merged[-1])
        yield calls
        yield duration
        yield relayed


PROXY = ProxyMetrics()
metrics.REGISTRY.register(PROXY)
