"""broker.runtime against a small fake broker on a real socket (DESIGN section 7's runtime routes).

The real routes are tested end to end in tests/e2e; here the server is scripted so every
status code, retry and failure mode the SDK must handle can be produced on demand.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker import errors, runtime
from broker.runtime import (
    BrokerClient,
    BrokerRuntimeError,
    BrokerUnavailable,
    EgressDenied,
    NeedsReauth,
    NotConfigured,
    NotFound,
    NotGranted,
    NotOAuth,
    PayloadTooLarge,
    ProviderError,
    RateLimited,
    SecretNotSet,
    Unauthorized,
)

TOKEN = "rt-canary-" + secrets.token_hex(12)
SECRET = "sk-canary-" + secrets.token_hex(12)
ACCESS = "at-canary-" + secrets.token_hex(12)


@dataclass
class FakeBroker:
    """The runtime half of the broker's HTTP contract, plus a queue of scripted answers."""

    secrets: dict[str, str | None] = field(
        default_factory=lambda: {"api_key": SECRET, "region": None}
    )
    oauth: bool = True
    script: list[web.Response] = field(default_factory=list)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    delay: float = 0.0
    refreshes: int = 0
    keep_alive: bool = True

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        app.router.add_get("/v1/runtime/secrets/{name}", self.secret)
        app.router.add_get("/v1/runtime/oauth/access-token", self.access_token)
        app.router.add_post("/v1/runtime/oauth/refresh", self.refresh)
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen.append((request.method, request.path_qs, request.headers.get("Authorization")))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            return self.script.pop(0)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return error(401, "unauthorized", "runtime token is invalid or expired")
        response: web.StreamResponse = await handler(request)
        if not self.keep_alive:
            response.force_close()
        return response

    async def secret(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.secrets:
            return error(403, "not_granted", f"secret {name!r} is not granted")
        if self.secrets[name] is None:
            return error(404, "not_found", f"secret {name!r} is not set")
        return web.json_response({"name": name, "value": self.secrets[name], "version": 7})

    async def access_token(self, request: web.Request) -> web.Response:
        if not self.oauth:
            return error(400, "not_oauth", "not an OAuth connection")
        return web.json_response(token_body(ACCESS))

    async def refresh(self, request: web.Request) -> web.Response:
        self.refreshes += 1
        return web.json_response(token_body(f"{ACCESS}-{self.refreshes}"))


def token_body(access_token: str) -> dict[str, Any]:
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_at": "2026-11-24T07:00:00Z",
        "scopes": ["orders.read", "offline_access"],
    }


def error(status: int, code: str, message: str = "") -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@pytest.fixture
async def broker() -> AsyncIterator[tuple[FakeBroker, str]]:
    fake = FakeBroker()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def client(broker: tuple[FakeBroker, str]) -> AsyncIterator[BrokerClient]:
    async with BrokerClient(broker[1], TOKEN, backoff=0.01) as c:
        yield c


@pytest.fixture(autouse=True)
async def clean_default() -> AsyncIterator[None]:
    yield
    runtime.use_client(None)
    await runtime.aclose()


# -- success ---------------------------------------------------------------------------------


async def test_secret_value_and_version(
    broker: tuple[FakeBroker, str], client: BrokerClient
) -> None:
    fake, _ = broker
    assert await client.secrets.get("api_key") == SECRET
    secret = await client.secrets.get_with_version("api_key")
    assert (secret.name, secret.value, secret.version) == ("api_key", SECRET, 7)
    assert fake.seen[0] == ("GET", "/v1/runtime/secrets/api_key", f"Bearer {TOKEN}")


async def test_module_level_facades_use_the_installed_client(client: BrokerClient) -> None:
    runtime.use_client(client)
    assert await runtime.Secrets.get("api_key") == SECRET
    assert await runtime.OAuth.accessToken() == ACCESS


async def test_access_token_parsed(broker: tuple[FakeBroker, str], client: BrokerClient) -> None:
    fake, _ = broker
    token = await client.oauth.token(min_ttl=60)
    assert token.access_token == ACCESS
    assert token.token_type == "Bearer"
    assert token.expires_at == datetime(2026, 11, 24, 7, tzinfo=UTC)
    assert token.scopes == ("orders.read", "offline_access")
    assert await client.oauth.access_token() == ACCESS
    assert await client.oauth.accessToken(timedelta(seconds=1.5)) == ACCESS
    paths = [path for _, path, _ in fake.seen]
    assert paths == [
        "/v1/runtime/oauth/access-token?min_ttl=60",
        "/v1/runtime/oauth/access-token",
        "/v1/runtime/oauth/access-token?min_ttl=2",
    ]


async def test_refresh_posts(broker: tuple[FakeBroker, str], client: BrokerClient) -> None:
    fake, _ = broker
    assert (await client.oauth.refresh()).access_token == f"{ACCESS}-1"
    assert fake.seen == [("POST", "/v1/runtime/oauth/refresh", f"Bearer {TOKEN}")]


async def test_negative_min_ttl_is_refused_locally(client: BrokerClient) -> None:
    with pytest.raises(ValueError, match="min_ttl"):
        await client.oauth.access_token(min_ttl=-1)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected", "base"),
    [
        (401, "unauthorized", Unauthorized, errors.Unauthorized),
        (403, "not_granted", NotGranted, errors.NotGranted),
        (404, "not_found", SecretNotSet, errors.NotFound),
        (409, "needs_reauth", NeedsReauth, errors.NeedsReauth),
        (400, "not_oauth", NotOAuth, errors.NotOAuth),
        (502, "provider_error", ProviderError, errors.ProviderError),
        (500, "internal_error", BrokerRuntimeError, errors.BrokerError),
        (429, "rate_limited", RateLimited, errors.RateLimited),
        (413, "payload_too_large", PayloadTooLarge, errors.PayloadTooLarge),
        (403, "egress_denied", EgressDenied, errors.EgressDenied),
    ],
)
async def test_error_codes_map_to_exceptions_without_retry(
    broker: tuple[FakeBroker, str],
    client: BrokerClient,
    status: int,
    code: str,
    expected: type[BrokerRuntimeError],
    base: type[Exception],
) -> None:
    fake, _ = broker
    fake.script = [error(status, code, "refused") for _ in range(5)]
    with pytest.raises(expected) as caught:
        await client.secrets.get("api_key")
    assert type(caught.value) is expected
    assert isinstance(caught.value, base)
    assert (caught.value.code, caught.value.status) == (code, status)
    assert len(fake.seen) == 1  # an answer, not an outage: never retried


async def test_real_routes_answer_each_refusal(
    broker: tuple[FakeBroker, str], client: BrokerClient
) -> None:
    fake, url = broker
    with pytest.raises(NotGranted, match="'other' is not granted"):
        await client.secrets.get("other")
    with pytest.raises(SecretNotSet):
        await client.secrets.get("region")
    fake.oauth = False
    with pytest.raises(NotOAuth):
        await client.oauth.access_token()
    async with BrokerClient(url, "wrong-token") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.secrets.get("api_key")


async def test_not_found_on_oauth_routes_is_plain_not_found(
    broker: tuple[FakeBroker, str], client: BrokerClient
) -> None:
    broker[0].script = [error(404, "not_found")]
    with pytest.raises(NotFound) as caught:
        await client.oauth.access_token()
    assert type(caught.value) is NotFound


async def test_503_is_retried_then_succeeds(
    broker: tuple[FakeBroker, str], client: BrokerClient
) -> None:
    fake, _ = broker
    fake.script = [error(503, "store_unavailable"), web.Response(status=503, text="busy")]
    assert await client.secrets.get("api_key") == SECRET
    assert len(fake.seen) == 3


async def test_503_forever_gives_up_after_bounded_retries(broker: tuple[FakeBroker, str]) -> None:
    fake, url = broker
    fake.script = [error(503, "store_unavailable") for _ in range(10)]
    started = time.monotonic()
    async with BrokerClient(url, TOKEN, retries=3, backoff=0.01) as c:
        with pytest.raises(BrokerUnavailable, match="after 4 attempts") as caught:
            await c.secrets.get("api_key")
    assert len(fake.seen) == 4
    assert time.monotonic() - started < 1
    assert caught.value.status == 503


async def test_gateway_error_from_a_proxy_is_retried(
    broker: tuple[FakeBroker, str], client: BrokerClient
) -> None:
    fake, _ = broker
    fake.script = [web.Response(status=502, text="<html>bad gateway</html>")]
    assert await client.secrets.get("api_key") == SECRET
    assert len(fake.seen) == 2


async def test_total_time_is_bounded(broker: tuple[FakeBroker, str]) -> None:
    fake, url = broker
    fake.delay = 2.0
    started = time.monotonic()
    async with BrokerClient(url, TOKEN, request_timeout=0.2, total_timeout=0.5) as c:
        with pytest.raises(BrokerUnavailable) as caught:
            await c.secrets.get("api_key")
    assert time.monotonic() - started < 1.0
    assert isinstance(caught.value.__cause__, TimeoutError)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_unavailable() -> None:
    async with BrokerClient(f"http://127.0.0.1:{free_port()}", TOKEN, backoff=0.01) as c:
        with pytest.raises(BrokerUnavailable, match="after 4 attempts") as caught:
            await c.oauth.access_token()
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)


async def test_malformed_success_is_an_error_that_does_not_quote_the_body(
    broker: tuple[FakeBroker, str], client: BrokerClient
) -> None:
    broker[0].script = [web.json_response({"value": SECRET})]  # no version
    with pytest.raises(BrokerRuntimeError, match="malformed") as caught:
        await client.secrets.get("api_key")
    assert caught.value.code == "bad_response"
    assert SECRET not in str(caught.value)


# -- no credential ever leaks ------------------------------------------------------------------


async def test_no_secret_or_token_in_errors_reprs_or_logs(
    broker: tuple[FakeBroker, str], client: BrokerClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, _ = broker
    failures: list[BaseException] = []
    fake.script = [
        error(403, "not_granted", f"token {TOKEN} may not read this"),  # a careless proxy
        error(503, "store_unavailable"),
        error(503, "store_unavailable"),
        error(503, "store_unavailable"),
        error(503, "store_unavailable"),
        web.json_response({"value": SECRET, "version": "x"}),
        web.json_response({"access_token": ACCESS, "expires_at": "soon"}),
    ]
    for call in (
        client.secrets.get,
        client.secrets.get,
        client.secrets.get,
        lambda _: client.oauth.access_token(),
    ):
        try:
            await call("api_key")
        except BrokerRuntimeError as exc:
            failures.append(exc)
    async with BrokerClient(f"http://127.0.0.1:{free_port()}", TOKEN, backoff=0.01) as down:
        with pytest.raises(BrokerUnavailable) as caught:
            await down.secrets.get("api_key")
    failures.append(caught.value)
    assert len(failures) == 5

    secret = await client.secrets.get_with_version("api_key")
    token = await client.oauth.token()
    texts = [caplog.text, repr(client), repr(secret), repr(token)]
    for failure in failures:
        texts += [str(failure), repr(failure), "".join(traceback.format_exception(failure))]
    for text in texts:
        for canary in (TOKEN, SECRET, ACCESS):
            assert canary not in text
    assert "[runtime token]" in str(failures[0])


# -- configuration -----------------------------------------------------------------------------


async def test_configured_from_the_environment(
    broker: tuple[FakeBroker, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKER_URL", broker[1] + "/")
    monkeypatch.setenv("BROKER_RUNTIME_TOKEN", TOKEN)
    assert await runtime.Secrets.get("api_key") == SECRET
    assert await runtime.OAuth.access_token() == ACCESS
    default = runtime.current_backend()
    await runtime.aclose()
    assert runtime.current_backend() is not default  # a fresh client after aclose


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "BROKER_URL is not set"),
        ({"BROKER_URL": "http://broker:8080"}, "BROKER_RUNTIME_TOKEN is not set"),
        ({"BROKER_URL": "broker:8080", "BROKER_RUNTIME_TOKEN": TOKEN}, "http"),
    ],
)
async def test_missing_configuration_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.delenv("BROKER_URL", raising=False)
    monkeypatch.delenv("BROKER_RUNTIME_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(NotConfigured, match=message) as caught:
        await runtime.Secrets.get("api_key")
    assert isinstance(caught.value, errors.ConfigError)
    assert TOKEN not in str(caught.value)


def test_url_credentials_are_refused_without_quoting_them() -> None:
    with pytest.raises(NotConfigured, match="must not carry credentials") as caught:
        BrokerClient("https://user:pw-canary@broker.internal:8443/base/", TOKEN)
    assert "pw-canary" not in str(caught.value)
    with pytest.raises(NotConfigured, match="port"):
        BrokerClient("http://broker:eighty", TOKEN)
    client = BrokerClient("https://broker.internal:8443/base/", TOKEN)
    assert repr(client) == "BrokerClient(url='https://broker.internal:8443/base')"


async def test_a_non_broker_404_is_not_secret_not_set(
    broker: tuple[FakeBroker, str], client: BrokerClient
) -> None:
    broker[0].script = [web.Response(status=404, text="404: Not Found")]
    with pytest.raises(BrokerRuntimeError) as caught:
        await client.secrets.get("api_key")
    assert type(caught.value) is BrokerRuntimeError
    assert (caught.value.code, caught.value.status) == ("unexpected_response", 404)


async def test_one_client_survives_successive_event_loops(client: BrokerClient) -> None:
    # a worker that calls asyncio.run() once per job, closing the client as each job ends
    async def main() -> str:
        try:
            return await client.secrets.get("api_key")
        finally:
            await client.close()

    def job() -> str:
        return asyncio.run(main())

    assert await asyncio.to_thread(job) == SECRET
    assert await asyncio.to_thread(job) == SECRET
    assert await client.secrets.get("api_key") == SECRET


async def test_a_client_left_open_is_rebound_to_the_next_loop(
    broker: tuple[FakeBroker, str], client: BrokerClient
) -> None:
    # the old loop is closed, so the old session cannot be; without keep-alive it holds no
    # socket, which keeps this test free of the ResourceWarning such a session leaves
    broker[0].keep_alive = False

    def job() -> str:
        return asyncio.run(client.secrets.get("api_key"))

    assert await asyncio.to_thread(job) == SECRET
    assert await asyncio.to_thread(job) == SECRET
    assert await client.secrets.get("api_key") == SECRET
