"""What the proxy records of each call: an audit entry, a log line and metrics. Never a
value: no query values, no bodies, no header values, and a path only as its template.

- audit: action `proxy.request`, name `<METHOD> <host><path template>`, outcome the
  provider's status (`200`, `404`) or the broker's refusal code (`egress_denied`,
  `rate_limited`, `payload_too_large`); identical calls within a flush become one entry
  with a count, as every audit entry does;
- log (`broker.proxy`, INFO): connection, connector, method, host, path template, status,
  duration and bytes each way;
- metrics by connector and host pattern (the manifest's, so the set of labels is bounded
  even where a pattern has a wildcard host): calls by status, duration, bytes; refusals by
  connector and rule.

The path template keeps a segment when it looks like a word (`v1`, `customers`,
`line_items`) and writes `{id}` for anything else (digits in it, long, or encoded), so
`/v1/customers/cus_N1ffr2` is `/v1/customers/{id}`: ids are not secrets, but they are
the tenant's data and an unbounded set."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from broker import metrics
from broker.services.audit import AuditLog

log = logging.getLogger("broker.proxy")

_WORD = re.compile(r"^(?:v\d{1,3}|[A-Za-z_.-]{1,40})$")

CALLS = Counter(
    "broker_proxy_requests_total",
    "Calls the egress proxy forwarded, by connector, host pattern (from permissions.http) "
    "and the provider's status (or the broker's error code when there was no answer: "
    "provider_error, needs_reauth).",
    ("connector", "host", "status"),
    registry=metrics.REGISTRY,
)
DURATION = Histogram(
    "broker_proxy_request_duration_seconds",
    "Time from a proxied call's arrival to the end of the provider's answer relayed, by "
    "connector and host pattern.",
    ("connector", "host"),
    buckets=metrics.LATENCY_BUCKETS,
    registry=metrics.REGISTRY,
)
BYTES = Counter(
    "broker_proxy_bytes_total",
    "Body bytes relayed by the egress proxy, by connector, host pattern and direction "
    "(sent: to the provider; received: from it).",
    ("connector", "host", "direction"),
    registry=metrics.REGISTRY,
)
REFUSALS = Counter(
    "broker_proxy_refusals_total",
    "Calls the egress proxy refused, by connector and rule (target: outside "
    "permissions.http; redirect: a redirect leaving it; address: a name resolving to an "
    "address the rules refuse; rate_limit: over connection.rateLimit; body_size: over "
    "BROKER_PROXY_MAX_BODY_BYTES).",
    ("connector", "rule"),
    registry=metrics.REGISTRY,
)


def path_template(path: str) -> str:
    segments = path.split("/")
    return "/".join(s if not s or _WORD.match(s) else "{id}" for s in segments) or "/"


@dataclass
class ProxyCall:
    """One proxied call, filled in as it goes and recorded once at its end."""

    actor: str
    tenant_id: str
    connection_id: str
    connector: str
    method: str
    host: str = "-"
    path: str = "/"
    host_pattern: str = "-"
    status: int | None = None
    refusal: tuple[str, str] | None = None
    """(error code, rule) when the broker refused the call."""
    failure: str | None = None
    """The error code when the call failed otherwise (`provider_error`, `needs_reauth`)."""
    sent: int = 0
    received: int = 0

    def refused(self, code: str, rule: str) -> None:
        self.refusal = (code, rule)

    def record(self, audit: AuditLog, seconds: float) -> None:
        template = path_template(self.path)
        outcome = self.refusal[0] if self.refusal else self.failure or str(self.status or "error")
        audit.record(
            actor=self.actor,
            action="proxy.request",
            tenant_id=self.tenant_id,
            connection_id=self.connection_id,
            name=f"{self.method} {self.host}{template}"[:256],
            outcome=outcome,
        )
        log.info(
            "proxy %s %s%s -> %s in %.1f ms (%d bytes sent, %d received)",
            self.method,
            self.host,
            template,
            outcome,
            seconds * 1000,
            self.sent,
            self.received,
            extra={"connector": self.connector},
        )
        if self.refusal is not None:
            REFUSALS.labels(self.connector, self.refusal[1]).inc()
            return
        status = str(self.status or self.failure or "error")
        series = _SERIES.get((self.connector, self.host_pattern, status))
        if series is None:
            series = _series(self.connector, self.host_pattern, status)
        calls, duration, sent, received = series
        calls.inc()
        duration.observe(seconds)
        if self.sent:  # most calls send no body: no lock taken to add nothing
            sent.inc(self.sent)
        received.inc(self.received)


Series = tuple[Counter, Histogram, Counter, Counter]
_SERIES: dict[tuple[str, str, str], Series] = {}
"""The labelled children of one (connector, host, status), looked up once: `labels()`
takes a lock and checks its arguments on every call, four times per proxied call. The set
is bounded as the labels are (connectors, their manifests' hosts, statuses)."""


def _series(connector: str, host: str, status: str) -> Series:
    found = _SERIES[(connector, host, status)] = (
        CALLS.labels(connector, host, status),
        DURATION.labels(connector, host),
        BYTES.labels(connector, host, "sent"),
        BYTES.labels(connector, host, "received"),
    )
    return found
