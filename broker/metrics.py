"""Prometheus metrics, kept in plain dicts and rendered in the text exposition format (0.0.4)
at GET /metrics.

A labelled increment is one dict update, so counting every runtime read costs the hot path
next to nothing (a client library with per-metric locks costs more than the read's own
bookkeeping). Metrics are per process, like any Prometheus client's; scrape every replica.

Labels carry route templates, methods, statuses, connector keys and outcome codes: never a
value taken from a request, so neither a secret nor a connect token can reach a metric.
"""

from __future__ import annotations

import bisect
import logging
import math
import traceback
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePath
from typing import Literal

from broker.errors import BrokerError

Labels = tuple[str, ...]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


def _series(name: str, names: Sequence[str], values: Labels, value: float) -> str:
    if not names:
        return f"{name} {_number(value)}"
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return f"{name}{{{pairs}}} {_number(value)}"


class Counter:
    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.labels = name, help, tuple(labels)
        self.values: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def lines(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for values, value in sorted(self.values.items()):
            yield _series(self.name, self.labels, values, value)


class Histogram:
    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.name, self.help, self.labels = name, help, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        # per label set: one count per bucket (not cumulative) and +Inf, then sum and count
        self.series: dict[Labels, list[float]] = {}

    def observe(self, value: float, *labels: str) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.buckets) + 3)
        series[bisect.bisect_left(self.buckets, value)] += 1
        series[-2] += value
        series[-1] += 1

    def count(self, *labels: str) -> float:
        series = self.series.get(labels)
        return 0.0 if series is None else series[-1]

    def lines(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        names = (*self.labels, "le")
        for values, series in sorted(self.series.items()):
            running = 0.0
            for bound, count in zip((*self.buckets, math.inf), series, strict=False):
                running += count
                yield _series(f"{self.name}_bucket", names, (*values, _number(bound)), running)
            yield _series(f"{self.name}_sum", self.labels, values, series[-2])
            yield _series(f"{self.name}_count", self.labels, values, series[-1])


class Gauge:
    """A value read at scrape time (the app's state), not kept here."""

    def __init__(
        self, name: str, help: str, labels: Sequence[str], values: Iterable[tuple[Labels, float]]
    ) -> None:
        self.name, self.help, self.labels, self.values = name, help, tuple(labels), values

    def lines(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for values, value in self.values:
            yield _series(self.name, self.labels, values, value)


class RequestMetrics:
    """`broker_http_requests_total` and `broker_http_request_duration_seconds` from one
    series per (method, route, status): one dict lookup per request (this runs on every
    runtime read), the two families summed up at scrape time."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        # per (method, route, status): counts per bucket and +Inf (not cumulative), then sum
        self.series: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self.series.get((method, route, status))
        if series is None:
            series = self.series[(method, route, status)] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, seconds)] += 1
        series[-1] += seconds

    def lines(self) -> Iterator[str]:
        requests = Counter(
            "broker_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
        )
        duration = Histogram(
            "broker_http_request_duration_seconds",
            "Time from the request reaching the broker's handler chain to its response.",
            ("route",),
            self.buckets,
        )
        for (method, route, status), series in self.series.items():
            count = sum(series[:-1])
            requests.inc(method, route, str(status), amount=count)
            merged = duration.series.setdefault((route,), [0.0] * (len(self.buckets) + 3))
            for i, value in enumerate(series[:-1]):
                merged[i] += value
            merged[-2] += series[-1]
            merged[-1] += count
        yield from requests.lines()
        yield from duration.lines()


HTTP = RequestMetrics()
TOKEN_REFRESHES = Counter(
    "broker_token_refreshes_total",
    "Token requests to providers for refreshes, by connector and outcome "
    "(ok, invalid_grant, or the OAuth error code of a transient failure).",
    ("connector", "outcome"),
)
TOKEN_REFRESH_DURATION = Histogram(
    "broker_token_refresh_duration_seconds",
    "Time a provider took to answer a refresh, by connector.",
    ("connector",),
)
CONNECT_CALLBACKS = Counter(
    "broker_connect_callbacks_total",
    "OAuth callbacks handled, by connector and outcome (connected, an RFC 6749 error code, "
    "one of the broker's, or other).",
    ("connector", "outcome"),
)
WEBHOOK_VERIFICATIONS = Counter(
    "broker_webhook_verifications_total",
    "Webhook signatures checked, by scheme and outcome (valid, or the error code).",
    ("scheme", "outcome"),
)
EVENT_DELIVERIES = Counter(
    "broker_event_deliveries_total",
    "Attempts to push an event to BROKER_EVENTS_URL, by outcome (delivered, failed).",
    ("outcome",),
)
BackgroundLoop = Literal["refresher", "event-worker", "audit-flush", "keyring-watch", "changes"]
BACKGROUND_ERRORS = Counter(
    "broker_background_errors_total",
    "Exceptions a background loop caught and survived (each ended one poll or one item), by loop.",
    ("loop",),
)

PROCESS_METRICS: tuple[Counter | Histogram | RequestMetrics, ...] = (
    HTTP,
    TOKEN_REFRESHES,
    TOKEN_REFRESH_DURATION,
    CONNECT_CALLBACKS,
    WEBHOOK_VERIFICATIONS,
    EVENT_DELIVERIES,
    BACKGROUND_ERRORS,
)


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
    BACKGROUND_ERRORS.inc(loop)
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


def render(extra: Iterable[Counter | Histogram | Gauge | RequestMetrics] = ()) -> str:
    """The exposition text of this process's metrics and `extra` (scrape-time gauges)."""
    lines: list[str] = []
    for metric in (*PROCESS_METRICS, *extra):
        lines.extend(metric.lines())
    return "\n".join(lines) + "\n"


TOKEN_REFRESHES_DROPPED = Counter(
    "broker_token_refreshes_dropped_total",
    "Refreshes whose result was not written, by connector and reason (lock_lost: the refresh "
    "lock ran out first; superseded: a reconnect replaced the token that was spent).",
    ("connector", "reason"),
)
PROCESS_METRICS += (TOKEN_REFRESHES_DROPPED,)
