"""Prometheus metrics, kept by prometheus-client and served as text (format 0.0.4) at
GET /metrics.

One `CollectorRegistry` per process (`REGISTRY`), not the library's global default: an
application embedding the broker keeps its own metrics apart, and two apps built in one
process (the tests) share these series instead of failing on duplicate names. Metrics are
per process, like any Prometheus client's: scrape every replica. The rewrap, a command-line
job with no /metrics, keeps its figures in `REWRAP_REGISTRY` (`write_rewrap`).

Labels carry route templates, methods, statuses, connector keys, store operations and the
broker's own outcome codes: never a value taken from a request or a provider's answer, so
neither a secret nor a token can reach a metric, and every label has a bounded set.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import traceback
from collections.abc import Iterable, Iterator
from pathlib import PurePath
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    write_to_textfile,
)
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from broker.errors import BrokerError

# `_created` series would double every counter and histogram for a value Prometheus does
# not need (it sees resets itself); the format served before prometheus-client had none
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, *LATENCY_BUCKETS[:-1])
"""A store call takes 0.1-2 ms and has a 2 s deadline."""
LAG_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
"""An event reaches its receiver within a second, or after retries of up to 5 min each."""

REGISTRY = CollectorRegistry(auto_describe=True)


class RequestMetrics:
    """`broker_http_requests_total{method,route,status}` and
    `broker_http_request_duration_seconds{route}`, kept in one dict of plain lists and
    handed to prometheus-client as a custom collector, which writes them.

    Recording runs on every runtime read: one dict lookup, a bisect and two additions. The
    library's own Counter and Histogram (a labelled child each, with their locks and checks)
    cost about 12,000 instructions more per request, 3-6 % of a runtime read, beyond the
    run-to-run spread (docs/benchmarks.md, "prometheus-client on the runtime read")."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._bounds = [floatToGoString(b) for b in (*buckets, math.inf)]  # type: ignore[no-untyped-call]
        # per (method, route, status): counts per bucket and +Inf (not cumulative), then sum
        self.series: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self.series.get((method, route, status))
        if series is None:
            series = self.series[(method, route, status)] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "broker_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=("method", "route", "status"),
        )
        by_route: dict[str, list[float]] = {}
        for (method, route, status), series in self.series.items():
            requests.add_metric((method, route, str(status)), sum(series[:-1]))
            merged = by_route.setdefault(route, [0.0] * len(series))
            for i, value in enumerate(series):
                merged[i] += value
        duration = HistogramMetricFamily(
            "broker_http_request_duration_seconds",
            "Time from the request reaching the broker's handler chain to its response.",
            labels=("route",),
        )
        for route, merged in by_route.items():
            cumulative = list(itertools.accumulate(merged[:-1]))
            duration.add_metric(
                (route,), list(zip(self._bounds, cumulative, strict=True)), merged[-1]
            )
        yield requests
        yield duration


HTTP = RequestMetrics()
REGISTRY.register(HTTP)
observe_request = HTTP.observe


TOKEN_REFRESHES = Counter(
    "broker_token_refreshes_total",
    "Token requests to providers for refreshes, by connector and outcome "
    "(ok, invalid_grant, or the OAuth error code of a transient failure).",
    ("connector", "outcome"),
    registry=REGISTRY,
)
TOKEN_REFRESH_DURATION = Histogram(
    "broker_token_refresh_duration_seconds",
    "Time a provider took to answer a refresh, by connector.",
    ("connector",),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TOKEN_REFRESHES_DROPPED = Counter(
    "broker_token_refreshes_dropped_total",
    "Refreshes whose result was not written, by connector and reason (lock_lost: the refresh "
    "lock ran out first; superseded: a reconnect replaced the token that was spent).",
    ("connector", "reason"),
    registry=REGISTRY,
)
REFRESH_LOCK_WAIT = Histogram(
    "broker_refresh_lock_wait_seconds",
    "Time a refresh waited on another holder of the connection's refresh lock (one "
    "observation per refresh this process waited on), by connector and how the wait ended "
    "(served: the holder's token; failed: the holder's failure; acquired: the lock was "
    "taken over; timeout; error).",
    ("connector", "outcome"),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
NEEDS_REAUTH = Counter(
    "broker_connections_needs_reauth_total",
    "Connections marked needs_reauth by a refresh, by connector and reason "
    "(invalid_grant, no_refresh_token).",
    ("connector", "reason"),
    registry=REGISTRY,
)
PROVIDER_DURATION = Histogram(
    "broker_provider_request_duration_seconds",
    "Time a provider's token or revocation endpoint took to answer (or to fail), by "
    "connector and call (code_exchange, refresh, client_credentials, revocation).",
    ("connector", "call"),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "broker_provider_errors_total",
    "Provider calls that failed, by connector, call and error (unreachable, rate_limited, "
    "transient, malformed, invalid_grant, invalid_client, an RFC 6749 error code, or error).",
    ("connector", "call", "error"),
    registry=REGISTRY,
)
STORE_DURATION = Histogram(
    "broker_store_operation_duration_seconds",
    "Time a store call took (or took to fail), by backend and operation.",
    ("backend", "op"),
    buckets=STORE_BUCKETS,
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "broker_store_errors_total",
    "Store calls that failed, by backend, operation and error (the broker's error code, "
    "or other); a lost compare-and-set or fence is an answer, not an error.",
    ("backend", "op", "error"),
    registry=REGISTRY,
)
CONNECT_CALLBACKS = Counter(
    "broker_connect_callbacks_total",
    "OAuth callbacks handled, by connector and outcome (connected, an RFC 6749 error code, "
    "one of the broker's, or other).",
    ("connector", "outcome"),
    registry=REGISTRY,
)
WEBHOOK_VERIFICATIONS = Counter(
    "broker_webhook_verifications_total",
    "Webhook signatures checked, by scheme and outcome (valid, or the error code).",
    ("scheme", "outcome"),
    registry=REGISTRY,
)
EVENT_DELIVERIES = Counter(
    "broker_event_deliveries_total",
    "Attempts to push an event to BROKER_EVENTS_URL, by outcome (delivered, failed).",
    ("outcome",),
    registry=REGISTRY,
)
EVENT_DELIVERY_LAG = Histogram(
    "broker_event_delivery_lag_seconds",
    "Time from an event happening to its receiver acknowledging it.",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
EVENT_LOG_LAG = Histogram(
    "broker_event_log_lag_seconds",
    "Time from an event happening to its landing in the event log (GET /v1/events).",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
EVENT_OUTBOX_DEPTH = Gauge(
    "broker_event_outbox_depth",
    "Events still in an outbox past the recovery delay (10 s), as this replica's event "
    "worker found them at its last poll (at most its batch); 0 while emitters move their own.",
    registry=REGISTRY,
)
EVENT_QUEUES_DUE = Gauge(
    "broker_event_queues_due",
    "Push queues with a delivery due, as this replica's event worker found them at its "
    "last poll (at most its batch).",
    registry=REGISTRY,
)
BackgroundLoop = Literal[
    "refresher", "event-worker", "audit-flush", "keyring-watch", "changes", "request-watchdog"
]
BACKGROUND_ERRORS = Counter(
    "broker_background_errors_total",
    "Exceptions a background loop caught and survived (each ended one poll or one item), by loop.",
    ("loop",),
    registry=REGISTRY,
)

REWRAP_REGISTRY = CollectorRegistry(auto_describe=True)
RewrapResult = Literal["scanned", "rewrapped", "skipped", "vanished", "failed"]
REWRAP_RECORDS = Gauge(
    "broker_rewrap_records",
    "Records of the running (or last) rewrap so far, by result (scanned is every record "
    "done; rewrapped, skipped, vanished and failed split it).",
    ("result",),
    registry=REWRAP_REGISTRY,
)
REWRAP_EXPECTED = Gauge(
    "broker_rewrap_expected_records",
    "Records counted in the store before the rewrap started (the progress total).",
    registry=REWRAP_REGISTRY,
)
REWRAP_RUNNING = Gauge(
    "broker_rewrap_running", "1 while a rewrap runs, 0 once it ended.", registry=REWRAP_REGISTRY
)


def write_rewrap(path: str) -> None:
    """The rewrap's figures into `path`, atomically, for node_exporter's textfile collector
    (the rewrap is a job of the command line: nothing scrapes it)."""
    write_to_textfile(path, REWRAP_REGISTRY)


class _Joined:
    def __init__(self, parts: Iterable[CollectorRegistry | Collector]) -> None:
        self.parts = tuple(parts)

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


def render(*extra: Collector) -> bytes:
    """The exposition text of this process's metrics and of `extra` (scrape-time gauges)."""
    return generate_latest(_Joined((REGISTRY, *extra)))


def background_error(
    log: logging.Logger,
    loop: BackgroundLoop,
    exc: Exception,
    *,
    item: str | None = None,
    expected: bool = False,
) -> None:
    """Count and log an exception a background loop survived. The line has the broker's
    error code, or the exception's class and where it was raised, never its text: that can
    quote a provider's answer or a stored value. `expected` (or a BrokerError: a store
    outage, a dead grant) logs a warning, anything else an error. `item` is an id the loop
    was working on."""
    BACKGROUND_ERRORS.labels(loop).inc()
    about = f" ({item})" if item else ""
    if isinstance(exc, BrokerError):
        log.warning("%s: %s%s", loop, exc.code, about)
        return
    level = logging.WARNING if expected else logging.ERROR
    log.log(level, "%s: %s raised at %s%s", loop, type(exc).__name__, _raised_at(exc), about)


def _raised_at(exc: BaseException) -> str:
    """`broker/services/refresh.py:170`: the innermost frame in the broker, else the
    innermost one (a library's), so the line points at code without quoting any value."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown place"
    ours = [f for f in frames if "broker" in PurePath(f.filename).parts]
    frame = (ours or frames)[-1]
    parts = PurePath(frame.filename).parts
    start = len(parts) - 1 - parts[::-1].index("broker") if ours else len(parts) - 1
    return f"{'/'.join(parts[start:])}:{frame.lineno}"
