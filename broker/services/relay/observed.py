"""What the proxy records of each call: an audit entry, a log line and metrics. Never a
value: no query values, no bodies, no header values, and a path only as its template.

- audit: action `proxy.request`, name `<METHOD> <host><path template>`, outcome the
  provider's status (`200`, `404`) or the broker's refusal code (`egress_denied`,
  `rate_limited`, `payload_too_large`); identical calls within a flush become one entry
  with a count, as every audit entry does;
- log (`broker.proxy`, INFO): connection, connector, method, host, path template, status,
  duration and bytes each way;
- metrics by connector and host pattern (the manifest's, so the set of labels is bounded
  even where a pattern has a wildcard host): calls by status, duration, bytes
  (`relay.metrics`); refusals by connector and rule.

The path template keeps a segment when it looks like a word (`v1`, `customers`,
`line_items`) and writes `{id}` for anything else (digits in it, long, or encoded), so
`/v1/customers/cus_N1ffr2` is `/v1/customers/{id}`: ids are not secrets, but they are
the tenant's data and an unbounded set."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from prometheus_client import Counter

from broker import metrics
from broker.services.audit import AuditLog
from broker.services.relay.metrics import PROXY

log = logging.getLogger("broker.proxy")

_WORD = re.compile(r"^(?:v\d{1,3}|[A-Za-z_.-]{1,40})$")

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
        PROXY.observe(
            (self.connector, self.host_pattern, status), seconds, self.sent, self.received
        )
