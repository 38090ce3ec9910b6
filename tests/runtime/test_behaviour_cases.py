"""sdk/behaviour-cases.json against the Python SDK: the same cases the TypeScript SDK runs
(sdk/typescript/test/behaviour.test.ts), so the two cannot drift apart."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from broker.errors import EgressDenied as ServerEgressDenied
from broker.http_rules.permissions import check
from broker.runtime import BrokerClient, BrokerRuntimeError, EgressDenied, HttpResponse
from broker.testing import connector_test_runtime
from tests.helpers import served

CASES = json.loads((Path(__file__).parents[2] / "sdk" / "behaviour-cases.json").read_text())
TOKEN: str = CASES["runtime_token"]


def resolve_times(value: Any) -> Any:
    """`{"$in": seconds}` -> that many seconds from now (ISO 8601), anywhere in a body."""
    if isinstance(value, dict):
        if set(value) == {"$in"}:
            return (datetime.now(UTC) + timedelta(seconds=value["$in"])).isoformat()
        return {k: resolve_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_times(v) for v in value]
    return value


@dataclass
class ScriptedBroker:
    answers: list[dict[str, Any]]
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            {
                "method": request.method,
                "path": request.raw_path.split("?")[0],
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": (await request.read()).decode(),
            }
        )
        if not self.answers:
            return web.json_response({"error": "unscripted"}, status=599)
        answer = self.answers.pop(0)
        if answer.get("disconnect"):
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if "text" in answer:
            return web.Response(
                status=answer["status"], text=answer["text"], headers=answer.get("headers")
            )
        return web.json_response(
            resolve_times(answer["body"]), status=answer["status"], headers=answer.get("headers")
        )


def make_client(url: str, options: dict[str, Any]) -> BrokerClient:
    settings = {**CASES["client"], **options}
    return BrokerClient(
        url,
        TOKEN,
        retries=settings["retries"],
        backoff=settings["backoff"],
        max_backoff=settings["maxBackoff"],
        cache_ttl=settings["cacheTtl"],
    )


async def run_step(client: BrokerClient, step: dict[str, Any]) -> object:
    call = step["call"]
    if call == "secrets.get":
        return await client.secrets.get(step["name"])
    if call == "oauth.accessToken":
        return await client.oauth.access_token(min_ttl=step.get("minTtl"))
    if call == "oauth.forceRefresh":
        return (await client.oauth.refresh()).access_token
    assert call == "http.request", call
    return await client.http.request(
        step["method"], step["url"], headers=step.get("headers"), data=step.get("body")
    )


def check_outcome(expect: dict[str, Any], outcome: object) -> None:
    if "error" in expect:
        assert isinstance(outcome, BrokerRuntimeError), outcome
        assert outcome.code == expect["error"]
        assert type(outcome).__name__ == expect["class"]
        if "status" in expect:
            assert outcome.status == expect["status"]
        if "retryAfter" in expect:
            assert getattr(outcome, "retry_after", None) == expect["retryAfter"]
        for canary in [TOKEN, *CASES["canaries"]]:
            assert canary not in str(outcome) and canary not in repr(outcome)
        return
    assert not isinstance(outcome, Exception), repr(outcome)
    if "value" in expect:
        assert outcome == expect["value"]
        return
    assert isinstance(outcome, HttpResponse)
    assert outcome.status == expect["status"]
    assert outcome.ok == expect.get("ok", outcome.ok)
    if "json" in expect:
        assert outcome.json() == expect["json"] == outcome.body
    if "text" in expect:
        assert outcome.text == expect["text"]
    for name, value in expect.get("headers", {}).items():
        assert outcome.headers[name] == value


def check_request(want: dict[str, Any], seen: dict[str, Any]) -> None:
    assert (seen["method"], seen["path"]) == (want["method"], want["path"])
    if "query" in want:
        assert seen["query"] == want["query"]
    for name, value in want.get("headers", {}).items():
        assert seen["headers"].get(name) == value, name
    if "body" in want:
        assert seen["body"] == want["body"]


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
async def test_behaviour_case(case: dict[str, Any]) -> None:
    broker = ScriptedBroker([dict(a) for a in case["answers"]])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", broker.handle)
    async with served(app) as url, make_client(url, case.get("client", {})) as client:
        for step in case["steps"]:
            try:
                outcome: object = await run_step(client, step)
            except BrokerRuntimeError as exc:
                outcome = exc
            check_outcome(step["expect"], outcome)
    assert len(broker.seen) == len(case["requests"]), broker.seen
    for want, seen in zip(case["requests"], broker.seen, strict=True):
        check_request(want, seen)


PERMISSIONS = [
    (group["patterns"], url, allowed)
    for group in CASES["http_permissions"]
    for allowed, urls in ((True, group["allowed"]), (False, group["denied"]))
    for url in urls
]


@pytest.mark.parametrize(("patterns", "url", "allowed"), PERMISSIONS)
async def test_http_permissions_case(patterns: list[str], url: str, allowed: bool) -> None:
    # the broker's rules (the proxy's and the Python test runtime's), and the test runtime
    try:
        check(patterns, url)
        server = True
    except ServerEgressDenied:
        server = False
    assert server == allowed
    runtime = connector_test_runtime(manifest={"permissions": {"http": patterns}})
    runtime.http.get_once(status=204)
    if allowed:
        assert (await runtime.proxy("GET", url, {}, None)).status == 204
    else:
        with pytest.raises(EgressDenied):
            await runtime.proxy("GET", url, {}, None)
