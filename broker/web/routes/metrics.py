"""GET /metrics: this process's Prometheus metrics, plus gauges read from the app's state."""

from __future__ import annotations

from aiohttp import web

from broker import metrics
from broker.web.openapi.spec import Operations, Reply
from broker.web.state import CONTEXT, KEYRING

routes = web.RouteTableDef()
operation = Operations("health")


@routes.get("/metrics")
@operation(
    "metrics",
    "Prometheus metrics",
    answers={200: Reply("Prometheus text format 0.0.4", media="text/plain")},
    store=False,
)
async def scrape(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    keyring = request.app[KEYRING].current
    app_metrics = (
        metrics.Gauge(
            "broker_keyring_keys",
            "Keys in the keyring this process uses (key ids are names, not key material).",
            ("key_id", "primary"),
            [((key_id, str(key_id == keyring.primary).lower()), 1.0) for key_id in keyring.ids],
        ),
        metrics.Gauge(
            "broker_keyring_reload_failing",
            "1 while the keyring file cannot be reloaded (the previous keyring stays in use).",
            (),
            [((), 1.0 if request.app[KEYRING].last_error else 0.0)],
        ),
        metrics.Gauge(
            "broker_token_refreshes_in_flight",
            "Refreshes this process is running or waiting on.",
            (),
            [((), float(len(ctx.refreshes)))],
        ),
        metrics.Gauge(
            "broker_audit_entries_dropped",
            "Audit entries dropped since start because the store kept failing.",
            (),
            [((), float(ctx.audit.dropped))],
        ),
    )
    return web.Response(
        body=metrics.render(app_metrics).encode(),
        headers={"Content-Type": metrics.CONTENT_TYPE},
    )
