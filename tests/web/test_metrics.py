"""GET /metrics: Prometheus text that Prometheus's own parser reads, requests counted by route
template, and no secret, token or path value in it."""

from __future__ import annotations

import secrets
from string import ascii_lowercase
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from broker import metrics
from tests.helpers import ADMIN_TOKEN, admin

Client = TestClient[Any, Any]

API_KEY_CANARY = "sk_test_METRICS_CANARY_4b1d0c"
WEBHOOK_CANARY = "whsec_METRICS_CANARY_77aa01"
PATH_CANARY = "PATH-CANARY-e3b0c442"
RETURN_URL = "http://127.0.0.1:8080/done"


async def scrape(
    client: Client,
) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The text, and every sample by (name, sorted labels), as Prometheus parses it."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == metrics.CONTENT_TYPE
    text = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def requests(method: str, route: str, status: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"method": method, "route": route, "status": str(status)}
    return "broker_http_requests_total", tuple(sorted(labels.items()))


async def test_requests_are_counted_by_route_template(client: Client) -> None:
    _, before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/v1/connectors", headers=admin())).status == 200
    assert (await client.get("/v1/connectors")).status == 401
    assert (await client.get(f"/v1/connections/conn_{PATH_CANARY}", headers=admin())).status == 404
    assert (await client.get(f"/no/such/{PATH_CANARY}")).status == 404
    text, after = await scrape(client)

    def delta(key: tuple[str, tuple[tuple[str, str], ...]]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta(requests("GET", "/v1/connectors", 200)) == 3
    assert delta(requests("GET", "/v1/connectors", 401)) == 1
    assert delta(requests("GET", "/v1/connections/{connection_id}", 404)) == 1
    assert delta(requests("GET", "unmatched", 404)) == 1
    latency = ("broker_http_request_duration_seconds_count", (("route", "/v1/connectors"),))
    assert delta(latency) == 4
    inf_bucket = (
        "broker_http_request_duration_seconds_bucket",
        (("le", "+Inf"), ("route", "/v1/connectors")),
    )
    assert after[inf_bucket] == after[latency]
    assert PATH_CANARY not in text  # paths never become labels


async def test_no_secret_or_token_reaches_the_metrics(client: Client) -> None:
    resp = await client.post(
        "/v1/connections",
        headers=admin(),
        json={
            "tenant_id": "t-metrics",
            "connector": "stripe",
            "settings": {"api_key": API_KEY_CANARY, "webhook_secret": WEBHOOK_CANARY},
        },
    )
    assert resp.status == 201
    connection_id = (await resp.json())["id"]
    minted = await client.post(
        "/v1/runtime-tokens", headers=admin(), json={"connection_id": connection_id}
    )
    runtime_token = (await minted.json())["token"]
    read = await client.get(
        "/v1/runtime/secrets/api_key", headers={"Authorization": f"Bearer {runtime_token}"}
    )
    assert (await read.json())["value"] == API_KEY_CANARY
    session = await client.post(
        "/v1/connect-sessions",
        headers=admin(),
        json={
            "tenant_id": "t-metrics",
            "connector": "stripe",
            "return_url": "http://127.0.0.1:8080/done",
        },
    )
    link = (await session.json())["connect_url"]
    connect_token = link.rsplit("/", 1)[1]
    assert (await client.get(f"/connect/{connect_token}")).status == 200

    text, samples = await scrape(client)
    for value in (API_KEY_CANARY, WEBHOOK_CANARY, runtime_token, connect_token, ADMIN_TOKEN):
        assert value not in text
    assert samples[requests("GET", "/connect/{token}", 200)] >= 1
    assert samples[requests("GET", "/v1/runtime/secrets/{name}", 200)] >= 1


async def test_keyring_and_process_gauges(client: Client) -> None:
    _, samples = await scrape(client)
    keyring = [labels for name, labels in samples if name == "broker_keyring_keys"]
    assert keyring == [(("key_id", "k1"), ("primary", "true"))]
    assert samples[("broker_keyring_reload_failing", ())] == 0
    assert samples[("broker_token_refreshes_in_flight", ())] == 0
    assert samples[("broker_audit_entries_dropped", ())] == 0


# Every family /metrics had before prometheus-client, with its type and label names:
# dashboards and alerts are written against these, so they must not change.
EXISTING = {
    "broker_http_requests": ("counter", {"method", "route", "status"}),
    "broker_http_request_duration_seconds": ("histogram", {"route"}),
    "broker_token_refreshes": ("counter", {"connector", "outcome"}),
    "broker_token_refresh_duration_seconds": ("histogram", {"connector"}),
    "broker_token_refreshes_dropped": ("counter", {"connector", "reason"}),
    "broker_connect_callbacks": ("counter", {"connector", "outcome"}),
    "broker_webhook_verifications": ("counter", {"scheme", "outcome"}),
    "broker_event_deliveries": ("counter", {"outcome"}),
    "broker_background_errors": ("counter", {"loop"}),
    "broker_keyring_keys": ("gauge", {"key_id", "primary"}),
    "broker_keyring_reload_failing": ("gauge", set()),
    "broker_token_refreshes_in_flight": ("gauge", set()),
    "broker_audit_entries_dropped": ("gauge", set()),
}


async def test_the_metric_names_of_before_are_kept(client: Client) -> None:
    # a series for every labelled family, so each shows its labels
    metrics.TOKEN_REFRESHES.labels("github", "ok")
    metrics.TOKEN_REFRESH_DURATION.labels("github")
    metrics.TOKEN_REFRESHES_DROPPED.labels("github", "lock_lost")
    metrics.CONNECT_CALLBACKS.labels("github", "connected")
    metrics.WEBHOOK_VERIFICATIONS.labels("stripe_signature", "valid")
    metrics.EVENT_DELIVERIES.labels("delivered")
    metrics.BACKGROUND_ERRORS.labels("refresher")
    assert (await client.get("/v1/connectors", headers=admin())).status == 200
    resp = await client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    for name, (kind, labels) in EXISTING.items():
        family = families[name]
        assert family.type == kind, name
        assert family.samples, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, name
    # no `_created` series: the text had none before, and they double every family
    assert not any(s.name.endswith("_created") for f in families.values() for s in f.samples)


async def test_provider_error_values_do_not_make_new_series(client: Client) -> None:
    """A provider (or anyone who can start a flow) chooses the callback's `error=`: as a label
    it would make one series per value on the public /metrics."""
    app = {"client_id": "metrics-client", "client_secret": "metrics-secret-0123456789"}
    assert (await client.put("/v1/oauth-apps/github_app", headers=admin(), json=app)).status == 200
    session = await client.post(
        "/v1/connect-sessions",
        headers=admin(),
        json={
            "tenant_id": "t-metrics",
            "connector": "github",
            "return_url": RETURN_URL,
            "skip_interstitial": True,
        },
    )
    link = "/connect/" + (await session.json())["connect_url"].rsplit("/", 1)[1]
    _, before = await scrape(client)
    # letters only: a value that looks like a token is already dropped as a possible secret
    errors = [
        "made_up_" + "".join(secrets.choice(ascii_lowercase) for _ in range(8)) for _ in range(200)
    ] + ["access_denied"]
    for error in errors:
        started = await client.get(link, allow_redirects=False)
        assert started.status == 302
        state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
        back = await client.get(
            "/oauth/callback/github",
            params={"error": error, "state": state},
            allow_redirects=False,
        )
        assert back.status == 302
        assert parse_qs(urlsplit(back.headers["Location"]).query)["status"] == ["error"]
    text, after = await scrape(client)

    def callbacks(samples: dict[Any, float]) -> dict[str, float]:
        return {
            dict(labels)["outcome"]: value
            for (name, labels), value in samples.items()
            if name == "broker_connect_callbacks_total" and ("connector", "github") in labels
        }

    new = {k: v - callbacks(before).get(k, 0) for k, v in callbacks(after).items()}
    assert {k: v for k, v in new.items() if v} == {"other": 200, "access_denied": 1}
    assert "made_up_" not in text


def test_the_request_series_as_prometheus_reads_them() -> None:
    """The request series are kept by hand (the hot path) and written by prometheus-client:
    cumulative buckets, `le` inclusive, per route across methods and statuses."""
    http = metrics.RequestMetrics(buckets=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        http.observe("GET", "/a", 200, seconds)
    http.observe("POST", "/a", 201, 0.2)
    registry = CollectorRegistry()
    registry.register(http)
    parsed = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    counted = {
        (s.labels["method"], s.labels["status"]): s.value
        for s in parsed["broker_http_requests"].samples
    }
    assert counted == {("GET", "200"): 4, ("POST", "201"): 1}
    samples = parsed["broker_http_request_duration_seconds"].samples
    buckets = {s.labels["le"]: s.value for s in samples if s.name.endswith("_bucket")}
    assert buckets == {"0.1": 2, "1.0": 4, "+Inf": 5}
    totals = {s.name: s.value for s in samples if not s.name.endswith("_bucket")}
    assert totals["broker_http_request_duration_seconds_count"] == 5
    assert totals["broker_http_request_duration_seconds_sum"] == pytest.approx(3.85)
