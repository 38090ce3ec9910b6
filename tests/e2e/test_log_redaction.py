"""No secret in any log line, error body or metric: a real broker process (JSON logs at DEBUG,
on Redis) taken through connect (the API-key form, and OAuth against the real oidc-provider),
runtime secret and access-token reads, a forced refresh, a key rotation and webhook
verification, with canary secrets, and with every token the provider issued recorded on its
way to the broker."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import stripe
from aiohttp import web

from broker.crypto import Keyring, save_keyring
from tests.e2e.harness import (
    RETURN_ORIGIN,
    RETURN_URL,
    browser,
    call_upstream,
    follow_callback,
    free_port,
    oauth_manifest,
    peer_client,
    query_of,
    serve,
    to_callback,
    write_connectors,
)
from tests.e2e.processes import BrokerProcess, broker_cli
from tests.helpers import json_lines
from tests.peers.oidc import OidcPeer, oidc_peer_fixture
from tests.store.redis_servers import RedisServer

BROKER_PORT, TOKEN_PROXY_PORT = free_port(), free_port()
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"
CLIENT_SECRET = "client-secret-REDACT-CANARY-6c1f0e2d"
API_KEY = "sk_test_REDACT_CANARY_9e8d7c6b"
WEBHOOK_SECRET = "whsec_REDACT_CANARY_3a2b1c0d"
ADMIN_TOKEN = "admin-token-REDACT-CANARY-47b5a9e1"
REDIS_PASSWORD = "redis-password-REDACT-CANARY-d4e5f6a7"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HEX_ID = re.compile(r"[0-9a-f]{32}")

oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                "redact-client",
                "client_secret_basic",
                BROKER_URL,
                "redact",
                client_secret=CLIENT_SECRET,
            )
        ],
        "pkceRequired": True,
        "rotateRefreshToken": True,
        "accessTokenTTL": 3600,
    },
    scope="module",
)


class RecordingTokenEndpoint:
    """In front of the provider's token endpoint: passes every request on and keeps every
    token of every answer, so the test knows each access and refresh token the broker got."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tokens: dict[str, set[str]] = {}
        self.app = web.Application()
        self.app.router.add_post("/token", self.token)

    async def token(self, request: web.Request) -> web.Response:
        status, answer = await call_upstream(request, self.upstream, await request.read())
        for name, value in json.loads(answer).items():
            if name.endswith("_token") and isinstance(value, str):
                self.tokens.setdefault(name, set()).add(value)
        return web.Response(body=answer, status=status, content_type="application/json")


class Recorder:
    """The admin and runtime client: keeps every error body and every request id, and the
    canaries it learns on the way (connect links, runtime tokens, authorization codes)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.canaries = {CLIENT_SECRET, API_KEY, WEBHOOK_SECRET, ADMIN_TOKEN, REDIS_PASSWORD}
        self.error_bodies: list[tuple[str, str]] = []
        """(path, body) of every answer of 400 and above"""
        self.request_ids: list[str] = []

    async def call(
        self, method: str, path: str, expect: int, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, str]]:
        kwargs.setdefault("allow_redirects", False)
        async with self.session.request(method, BROKER_URL + path, **kwargs) as resp:
            text = await resp.text()
            self.request_ids.append(resp.headers["X-Request-Id"])
            if resp.status >= 400:
                self.error_bodies.append((path, text))
            assert resp.status == expect, f"{method} {path}: {resp.status} {text}"
            is_json = resp.content_type == "application/json"
            return (json.loads(text) if is_json else {"html": text}), dict(resp.headers)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    # a password-protected user for the broker (the default user stays open for the helper's
    # PING): the store URL carries a secret too
    acl = ("--user", "broker", "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all")
    server = RedisServer(tmp_path / "redis", None, *acl)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def recording(oidc: OidcPeer) -> AsyncIterator[RecordingTokenEndpoint]:
    endpoint = RecordingTokenEndpoint(oidc.token_endpoint)
    async with serve(endpoint.app, TOKEN_PROXY_PORT):
        yield endpoint


async def test_no_canary_in_any_log_line_error_body_or_metric(
    tmp_path: Path, redis: RedisServer, oidc: OidcPeer, recording: RecordingTokenEndpoint
) -> None:
    keyring = tmp_path / "keyring.json"
    save_keyring(keyring, Keyring.generate("k1"))
    proxy = f"http://127.0.0.1:{TOKEN_PROXY_PORT}/token"
    folder = write_connectors(
        tmp_path / "connectors", [oauth_manifest("redact", oidc, tokenUrlTemplate=proxy)]
    )
    env = {
        "BROKER_STORE": redis.url.replace("redis://", f"redis://broker:{REDIS_PASSWORD}@"),
        "BROKER_KEYRING_FILE": str(keyring),
        "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
        "BROKER_PUBLIC_URL": BROKER_URL,
        "BROKER_ALLOWED_RETURN_ORIGINS": RETURN_ORIGIN,
        "BROKER_CONNECTORS_DIRS": str(folder),
        "BROKER_LOG_FORMAT": "json",
        "BROKER_LOG_LEVEL": "DEBUG",
        "BROKER_FORCED_REFRESH_INTERVAL": "0",
    }
    broker = BrokerProcess(BROKER_PORT, env, tmp_path / "broker.log")
    await asyncio.to_thread(broker.start)
    try:
        async with aiohttp.ClientSession() as session:
            api = Recorder(session)
            oauth_id = await connect_with_oauth(api)
            key_id = await connect_with_the_form(api)
            key_token = await runtime_reads(api, oauth_id, key_id)
            await bad_requests(api, key_token)
            await verify_webhooks(api, key_id)
            rotation = await rotate_keys(api, env, oauth_id, key_token)
            async with session.get(f"{BROKER_URL}/metrics") as resp:
                scraped = await resp.text()
            audit, _ = await api.call("GET", "/v1/audit?tenant_id=tenant-a", 200, headers=ADMIN)
            assert audit["entries"]
    finally:
        broker.stop()

    canaries = api.canaries | set(json.loads(keyring.read_text())["keys"].values())
    for name in ("access_token", "refresh_token", "id_token"):
        canaries |= recording.tokens.get(name, set())
    # the canaries are real: the first grant's tokens, and those of two forced refreshes
    assert len(recording.tokens["access_token"]) >= 3
    assert len(recording.tokens["refresh_token"]) >= 3

    log = broker.log.read_text()
    access = [line for line in json_lines(log) if line["logger"] == "aiohttp.access"]
    assert {"/connect/{token}", "/oauth/callback/{connector}", "unmatched"} <= {
        line["route"] for line in access
    }
    (hook,) = [line for line in access if line["request_id"] == "hook-1" and line["status"] == 409]
    assert (hook["route"], hook["method"], hook["connection_id"]) == (
        "/v1/webhooks/verify",
        "POST",
        key_id,
    )
    made = [line["request_id"] for line in access if line["request_id"] != "hook-1"]
    assert made and all(HEX_ID.fullmatch(request_id) for request_id in made)

    places = {"log": log, "metrics": scraped, "audit": json.dumps(audit), "cli": rotation}
    leaks = {(where, c[:12]) for where, text in places.items() for c in canaries if c in text}
    leaks |= {
        (f"error body of {urlsplit(path).path}", c[:12])
        for path, body in api.error_bodies
        for c in canaries
        if c in body and not own_form(path, c)
    }
    assert api.error_bodies and leaks == set(), leaks


def own_form(path: str, canary: str) -> bool:
    """The settings form (again with its problems) posts back to its own link: the page
    holds that link's token, and only that one."""
    return path == f"/connect/{canary}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def connect_link(api: Recorder, connector: str) -> str:
    """A connect session's link path; its token is a canary."""
    session = {"tenant_id": "tenant-a", "connector": connector, "return_url": RETURN_URL}
    link, _ = await api.call("POST", "/v1/connect-sessions", 201, headers=ADMIN, json=session)
    path = urlsplit(str(link["connect_url"])).path
    api.canaries.add(path.rsplit("/", 1)[1])
    return path


async def connect_with_oauth(api: Recorder) -> str:
    """The Connect button against the real provider; the new connection's id."""
    app = {"client_id": "redact-client", "client_secret": CLIENT_SECRET}
    await api.call("PUT", "/v1/oauth-apps/redact", 200, headers=ADMIN, json=app)
    link = await connect_link(api, "redact")
    async with browser() as tenant:
        callback = await to_callback(tenant, BROKER_URL + link, BROKER_URL)
        api.canaries.add(query_of(callback)["code"])
        status, _, done = await follow_callback(tenant, callback)
    assert (status, done["status"]) == (302, "connected"), done
    return done["connection_id"]


async def connect_with_the_form(api: Recorder) -> str:
    """An API-key connector's settings form, first with a problem; the connection's id."""
    form = await connect_link(api, "stripe")
    await api.call("GET", form, 200)
    await api.call("POST", form, 400, data={"api_key": "", "webhook_secret": API_KEY})
    settings = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    _, headers = await api.call("POST", form, 303, data=settings)
    await api.call("GET", form, 404)  # the used link: a page; its path is never logged
    return query_of(headers["Location"])["connection_id"]


async def runtime_reads(api: Recorder, oauth_id: str, key_id: str) -> str:
    """Secrets, the access token and a forced refresh; the API-key connection's token."""
    oauth_token, key_token = await mint(api, oauth_id), await mint(api, key_id)
    read, _ = await api.call("GET", "/v1/runtime/secrets/api_key", 200, headers=bearer(key_token))
    assert read["value"] == API_KEY
    await api.call("GET", "/v1/runtime/secrets/webhook_secret", 200, headers=bearer(key_token))
    oauth = bearer(oauth_token)
    first, _ = await api.call("GET", "/v1/runtime/oauth/access-token", 200, headers=oauth)
    forced, _ = await api.call("POST", "/v1/runtime/oauth/refresh", 200, headers=oauth)
    assert forced["access_token"] != first["access_token"]
    return key_token


async def bad_requests(api: Recorder, key_token: str) -> None:
    """Failures with canaries where a careless log line or error message would show them."""
    runtime = bearer(key_token)
    await api.call("GET", f"/v1/runtime/secrets/client_secret?v={API_KEY}", 403, headers=runtime)
    await api.call("GET", "/v1/runtime/secrets/api_key", 401, headers=bearer(key_token + "x"))
    await api.call("GET", "/v1/runtime/oauth/access-token", 400, headers=runtime)
    await api.call("GET", f"/v1/connectors?t={ADMIN_TOKEN}", 401, headers=bearer(API_KEY))
    for body in (
        {"tenant_id": "t", "connector": "stripe", "settings": {"api_key": 5}, "x": API_KEY},
        {"tenant_id": "t", "connector": "stripe", "settings": {"api_key": API_KEY, "n": 7}},
    ):
        await api.call("POST", "/v1/connections", 400, headers=ADMIN, json=body)
    await api.call("GET", f"/nowhere/{API_KEY}?secret={CLIENT_SECRET}", 404)
    await api.call("GET", f"/oauth/callback/redact?state={API_KEY}&code={API_KEY}", 400)


async def verify_webhooks(api: Recorder, key_id: str) -> None:
    """Valid, replayed (with a request id of the caller's), tampered, unsigned."""
    body = json.dumps({"id": "evt_redact", "type": "invoice.paid"}).encode()
    signature = stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, timestamp=int(time.time())
    )
    signed = {**ADMIN, "Stripe-Signature": str(signature), "X-Request-Id": "hook-1"}
    verify = f"/v1/webhooks/verify?connection_id={key_id}"
    await api.call("POST", verify, 200, data=body, headers=signed)
    await api.call("POST", verify, 409, data=body, headers=signed)
    await api.call("POST", verify, 401, data=body + b" ", headers=signed)
    await api.call("POST", verify, 400, data=body, headers=ADMIN)


async def rotate_keys(api: Recorder, env: dict[str, str], oauth_id: str, key_token: str) -> str:
    """`keys add`, `promote`, `rewrap` beside the serving broker, then reads under the new
    key; what the commands printed."""
    printed = [broker_cli(env, "keys", "add", "--id", "k2")]
    printed.append(broker_cli(env, "keys", "promote", "k2"))
    for _ in range(100):
        ready, _ = await api.call("GET", "/readyz", 200)
        if ready["keyring"]["primary"] == "k2":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the broker did not pick up k2")
    printed.append(await asyncio.to_thread(broker_cli, env, "keys", "rewrap"))
    assert " 0 failed" in printed[-1], printed[-1]
    fresh = bearer(await mint(api, oauth_id))
    await api.call("GET", "/v1/runtime/oauth/access-token", 200, headers=fresh)
    await api.call("POST", "/v1/runtime/oauth/refresh", 200, headers=fresh)
    await api.call("GET", "/v1/runtime/secrets/api_key", 200, headers=bearer(key_token))
    return "\n".join(printed)


async def mint(api: Recorder, connection_id: str) -> str:
    minted, _ = await api.call(
        "POST", "/v1/runtime-tokens", 201, headers=ADMIN, json={"connection_id": connection_id}
    )
    api.canaries.add(minted["token"])
    return str(minted["token"])
