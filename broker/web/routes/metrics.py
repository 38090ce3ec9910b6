"""GET /metrics: this process's Prometheus metrics, plus gauges read from the app's state."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric

from broker import metrics
from broker.web.openapi.spec import Operations, Reply
from broker.web.state import CONTEXT, KEYRING

routes = web.RouteTableDef()
operation = Operations("health")


class AppGauges:
    """What one app holds, read when scraped: two apps in one process each show their own."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        ctx = self.app[CONTEXT]
        holder = self.app[KEYRING]
        keyring = holder.current
        keys = GaugeMetricFamily(
            "broker_keyring_keys",
            "Keys in the keyring this process uses (key ids are names, not key material).",
            labels=("key_id", "primary"),
        )
        for key_id in keyring.ids:
            keys.add_metric((key_id, str(key_id == keyring.primary).lower()), 1.0)
        yield keys
        yield GaugeMetricFamily(
            "broker_keyring_reload_failing",
            "1 while the keyring file cannot be reloaded (the previous keyring stays in use).",
            value=1.0 if holder.last_error else 0.0,
        )
        yield GaugeMetricFamily(
            "broker_token_refreshes_in_flight",
            "Refreshes this process is running or waiting on.",
            value=float(len(ctx.refreshes)),
        )
        yield GaugeMetricFamily(
            "broker_audit_entries_dropped",
            "Audit entries dropped since start because the store kept failing.",
            value=float(ctx.audit.dropped),
        )


@routes.get("/metrics")
@operation(
    "metrics",
    "Prometheus metrics",
    answers={200: Reply("Prometheus text format 0.0.4", media="text/plain")},
    store=False,
)
async def scrape(request: web.Request) -> web.Response:
    return web.Response(
        body=metrics.render(AppGauges(request.app)),
        headers={"Content-Type": metrics.CONTENT_TYPE},
    )
