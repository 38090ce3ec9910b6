"""The app's store calls, timed per backend and operation, read back through GET /metrics as
Prometheus parses it (the wrapper itself: tests/store/test_measured_store.py)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import admin

Client = TestClient[Any, Any]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Client) -> tuple[str, Samples]:
    text = await (await client.get("/metrics")).text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def store_calls(samples: Samples, op: str) -> float:
    labels = (("backend", "sqlite"), ("op", op))
    return samples.get(("broker_store_operation_duration_seconds_count", labels), 0.0)


async def test_the_app_times_its_store_calls(client: Client) -> None:
    _, before = await scrape(client)
    resp = await client.get("/v1/connections/conn_" + "0" * 26, headers=admin())
    assert resp.status == 404
    assert (await client.get("/readyz")).status == 200
    _, after = await scrape(client)
    assert store_calls(after, "get") == store_calls(before, "get") + 1
    assert store_calls(after, "ping") == store_calls(before, "ping") + 1
