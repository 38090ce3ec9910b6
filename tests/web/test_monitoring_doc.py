"""The alert rules in docs/operations.md ("Monitoring") parse as a Prometheus rule file and
name only metrics a broker serves, so a renamed metric cannot leave an alert that never
fires."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def rules() -> list[dict[str, Any]]:
    text = DOC.read_text()
    section = text[text.index("## Monitoring") : text.index("## Logs")]
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        loaded = yaml.safe_load(block)
        if "groups" in loaded:
            found: list[dict[str, Any]] = loaded["groups"][0]["rules"]
            return found
    raise AssertionError("no rule file in the Monitoring section")


async def test_every_alert_names_a_metric_the_broker_serves(
    client: TestClient[Any, Any],
) -> None:
    served = {
        family.name
        for family in text_string_to_metric_families(await (await client.get("/metrics")).text())
    }
    alerts = rules()
    assert len(alerts) >= 15
    for rule in alerts:
        assert rule["alert"].startswith("Broker") and rule["expr"], rule
        for name in set(re.findall(r"\bbroker_[a-z_]+", rule["expr"])):
            family = next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)
            assert family in served, f"{rule['alert']}: {name} is not on /metrics"
