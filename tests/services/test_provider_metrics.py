"""Provider calls are timed and their failures counted per connector and call, under a label
from a fixed set, against a real token endpoint on loopback: a provider's made-up error
string or a token never becomes a label."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from broker import metrics, oauth
from broker.manifest import OAuthConfig
from broker.services.provider import obtain_token
from broker.services.provider_metrics import error_label
from broker.web.state import CONTEXT
from tests.e2e.harness import free_port
from tests.helpers import metric, served

CONNECTOR = "probe"
TOKEN_CANARY = "at_CANARY_provider_metrics_9d5ed678fe57bcca"
ERROR_CANARY = "CANARY_made_up_error"
CLIENT = oauth.ClientAuth(method="client_secret_basic", client_id="c", client_secret="s-123456")

Answer = tuple[int, str, str]  # status, content type, body
ANSWERS: dict[str, Answer] = {
    "ok": (200, "application/json", json.dumps({"access_token": TOKEN_CANARY, "expires_in": 60})),
    "invalid_grant": (400, "application/json", json.dumps({"error": "invalid_grant"})),
    "rate_limited": (429, "application/json", json.dumps({"error": "slow_down"})),
    "transient": (503, "text/html", "<html>down</html>"),
    "malformed": (200, "text/html", "<html>a login page</html>"),
    "error": (400, "application/json", json.dumps({"error": ERROR_CANARY})),
    "invalid_scope": (400, "application/json", json.dumps({"error": "invalid_scope"})),
}


@pytest.fixture
async def token_url() -> AsyncIterator[str]:
    async def token(request: web.Request) -> web.Response:
        status, content_type, body = ANSWERS[request.query["answer"]]
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_post("/token", token)
    async with served(app) as base:
        yield f"{base}/token"


async def call(client: TestClient[Any, Any], url: str) -> None:
    config = OAuthConfig.model_validate({"tokenUrlTemplate": url, "client": {"credentialKey": "p"}})
    request = oauth.prepare_refresh_request(url, client=CLIENT, refresh_token="rt-old-123456")
    await obtain_token(
        client.app[CONTEXT],
        request,
        config,
        connector=CONNECTOR,
        call="refresh",
        requested_scopes=[],
    )


def timed() -> float:
    return metric(
        "broker_provider_request_duration_seconds_count", connector=CONNECTOR, call="refresh"
    )


def failed(error: str) -> float:
    return metric("broker_provider_errors_total", connector=CONNECTOR, call="refresh", error=error)


@pytest.mark.parametrize("answer", sorted(ANSWERS))
async def test_each_answer_is_timed_and_a_failure_counted_under_its_class(
    client: TestClient[Any, Any], token_url: str, answer: str
) -> None:
    before_timed, before_failed = timed(), failed(answer)
    if answer == "ok":
        await call(client, f"{token_url}?answer=ok")
    else:
        with pytest.raises(oauth.OAuthError):
            await call(client, f"{token_url}?answer={answer}")
        assert failed(answer) == before_failed + 1
    assert timed() == before_timed + 1
    assert failed("ok") == 0
    text = metrics.render().decode()
    assert ERROR_CANARY not in text and TOKEN_CANARY not in text


async def test_an_endpoint_nobody_listens_on_is_unreachable(client: TestClient[Any, Any]) -> None:
    before_timed, before_failed = timed(), failed("unreachable")
    with pytest.raises(oauth.TransientProviderError):
        await call(client, f"http://127.0.0.1:{free_port()}/token")
    assert (timed(), failed("unreachable")) == (before_timed + 1, before_failed + 1)


def test_labels_come_from_a_fixed_set() -> None:
    made_up = oauth.TokenEndpointError(
        "x", error="bad_refresh_token_of_a_kind", provider_status=400
    )
    assert error_label(made_up) == "error"
    assert error_label(oauth.InvalidClient("x", error="incorrect_client_credentials")) == (
        "invalid_client"
    )
    # a provider naming its error "unreachable" is a transient answer, not a network failure
    named = oauth.TransientProviderError("x", error="unreachable", provider_status=503)
    assert error_label(named) == "transient"
    assert error_label(RuntimeError(ERROR_CANARY)) == "other"
