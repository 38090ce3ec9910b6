"""Token responses that arrive in pieces (broker.services.provider): a provider or proxy
may flush a token body in several TCP segments, chunked or with a Content-Length; the broker
reads to the end of the body, and refuses one over its cap without quoting it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker import oauth
from broker.manifest import OAuthConfig
from broker.services.context import Context
from broker.services.provider import obtain_token
from broker.services.provider_send import MAX_RESPONSE_BYTES
from broker.web.state import CONTEXT
from tests.helpers import Framing, send_in_pieces

ACCESS_CANARY = "at_CANARY_3c59dc048e8850243be8079a5c74d079"
REFRESH_CANARY = "rt_CANARY_b6d767d2f8ed5d21a44b0e5886680cb9"
PIECES = 4
PROBE: dict[str, Any] = {"connector": "slow", "call": "refresh"}


class SlowTokenEndpoint:
    """A token endpoint that writes its answer a few bytes at a time, pausing between writes,
    so the broker sees `{"access_token": "at` before the rest exists."""

    def __init__(self) -> None:
        self.framing: Framing = "chunked"
        self.body = b""
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests += 1
        return await send_in_pieces(request, self.body, framing=self.framing, pieces=PIECES)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[SlowTokenEndpoint, str]]:
    slow = SlowTokenEndpoint()
    server = TestServer(slow.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield slow, str(server.make_url("/token"))
    finally:
        await server.close()


def config_for(url: str) -> OAuthConfig:
    return OAuthConfig.model_validate(
        {"tokenUrlTemplate": url, "client": {"credentialKey": "slow"}}
    )


CLIENT = oauth.ClientAuth(method="client_secret_basic", client_id="c", client_secret="s-123456")


def token_request(grant: str, url: str) -> oauth.TokenRequest:
    if grant == "authorization_code":
        return oauth.prepare_authorization_code_request(
            url, client=CLIENT, code="code-1", redirect_uri="http://127.0.0.1/cb"
        )
    return oauth.prepare_refresh_request(url, client=CLIENT, refresh_token="old-refresh-token")


def answer(**extra: Any) -> bytes:
    # spaces after the separators, as many providers send: the first piece then ends
    # inside the access token's value
    return json.dumps(
        {
            "access_token": ACCESS_CANARY,
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": REFRESH_CANARY,
            "scope": "read",
            **extra,
        }
    ).encode()


@pytest.mark.parametrize("framing", ["chunked", "length"])
@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
async def test_a_token_body_sent_in_pieces_is_read_whole(
    client: TestClient[Any, Any],
    endpoint: tuple[SlowTokenEndpoint, str],
    framing: Framing,
    grant: str,
) -> None:
    ctx: Context = client.app[CONTEXT]
    slow, url = endpoint
    slow.framing, slow.body = framing, answer()
    request, config = token_request(grant, url), config_for(url)
    token = await obtain_token(ctx, request, config, requested_scopes=[], **PROBE)
    assert slow.requests == 1
    assert (token.access_token, token.refresh_token) == (ACCESS_CANARY, REFRESH_CANARY)
    assert token.scopes == ["read"]


@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_a_body_over_the_cap_is_a_clear_error_that_quotes_nothing(
    client: TestClient[Any, Any],
    endpoint: tuple[SlowTokenEndpoint, str],
    framing: Framing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ctx: Context = client.app[CONTEXT]
    slow, url = endpoint
    # a valid answer, just too large: a prefix read would have parsed
    slow.framing, slow.body = framing, answer(padding="x" * MAX_RESPONSE_BYTES)
    with pytest.raises(oauth.MalformedTokenResponse) as caught:
        await obtain_token(
            ctx, token_request("refresh_token", url), config_for(url), requested_scopes=[], **PROBE
        )
    assert "larger than" in str(caught.value) and "KiB" in str(caught.value)
    assert caught.value.provider_status == 200
    for canary in (ACCESS_CANARY, REFRESH_CANARY, "xxxxxxxx"):
        assert canary not in str(caught.value)
        assert canary not in caplog.text
