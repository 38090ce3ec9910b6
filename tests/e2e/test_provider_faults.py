"""A token endpoint at its worst, in front of the real npm oidc-provider: slow past the broker's
time limit, a 5xx page, 429 with Retry-After, an HTML page, a body cut short in transit, a
whole answer holding half a JSON document, a reset connection. Each failed refresh is classed
(transient: the exchange failed, try again; `error`: the answer itself is unusable), backed
off (never before the provider's Retry-After), and the last valid token is served while it
lives; once it has expired the caller gets a 502, and the first good answer ends it all."""

from __future__ import annotations

import asyncio
import calendar
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from broker.config import Settings
from broker.services.records import Connection
from broker.services.refresh import policy
from broker.store import keys
from broker.web.app import create_app
from broker.web.state import CONTEXT
from tests.e2e.faulty_token_endpoint import CANARY, RETRY_AFTER, FaultyTokenEndpoint
from tests.e2e.harness import (
    TRICKY_SECRET,
    browser,
    free_port,
    oauth_manifest,
    peer_client,
    run_connect,
    serve,
    start_connect,
    works_at_the_provider,
    write_connectors,
)
from tests.helpers import admin
from tests.peers.oidc import OidcPeer, oidc_peer_fixture

BROKER_PORT, FAULTS_PORT = free_port(), free_port()
BROKER_URL = f"http://127.0.0.1:{BROKER_PORT}"
TTL = 8
LOCK_TTL = 2.0
"""The refresh lock's TTL: a provider call gets at most 1.5 s of it (a quarter is kept for the
writes), so the slow endpoint only has to be slower than that."""

# connector -> (the outcome it counts in broker_token_refreshes_total, its `last_error`)
FAULTS: dict[str, tuple[str, str]] = {
    "slow": ("transient", "unreachable"),
    "gateway": ("transient", "http_502"),
    "throttled": ("transient", "http_429"),
    "truncated": ("transient", "unreachable"),
    "reset": ("transient", "unreachable"),
    "html": ("error", "http_200"),
    "halfjson": ("error", "http_200"),
}

oidc = oidc_peer_fixture(
    lambda: {
        "clients": [
            peer_client(
                "faults-client",
                "client_secret_basic",
                BROKER_URL,
                "slow",
                client_secret=TRICKY_SECRET,
                redirect_uris=[f"{BROKER_URL}/oauth/callback/{key}" for key in FAULTS],
            )
        ],
        "pkceRequired": True,
        "rotateRefreshToken": True,
        "accessTokenTTL": TTL,
    },
    scope="module",
)


@pytest.fixture
async def endpoint(oidc: OidcPeer) -> AsyncIterator[FaultyTokenEndpoint]:
    faulty = FaultyTokenEndpoint(oidc.token_endpoint)
    async with serve(faulty.app, FAULTS_PORT):
        yield faulty
        faulty.closing.set()


@pytest.fixture
async def broker(
    oidc: OidcPeer,
    endpoint: FaultyTokenEndpoint,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> AsyncIterator[web.Application]:
    manifests = [
        oauth_manifest(
            key,
            oidc,
            tokenUrlTemplate=f"http://127.0.0.1:{FAULTS_PORT}/token/{key}",
            client={"credentialKey": "faults"},
        )
        for key in FAULTS
    ]
    settings = make_settings(
        public_url=BROKER_URL,
        allowed_return_origins="https://dashboard.example.com",
        connectors_dirs=str(write_connectors(tmp_path / "connectors", manifests)),
        refresher=False,  # every attempt comes from a read the test makes
        refresh_lock_ttl=LOCK_TTL,
    )
    app = create_app(settings)
    async with serve(app, BROKER_PORT), aiohttp.ClientSession(base_url=BROKER_URL) as api:
        resp = await api.put(
            "/v1/oauth-apps/faults",
            headers=admin(),
            json={"client_id": "faults-client", "client_secret": TRICKY_SECRET},
        )
        assert resp.status == 200, await resp.text()
        yield app


class Runtime:
    """One connection as its runtime and the admin see it."""

    def __init__(self, api: aiohttp.ClientSession, app: web.Application, connector: str) -> None:
        self.api, self.app, self.connector = api, app, connector
        self.connection_id = self.runtime = ""
        self.errors: list[str] = []
        """Every error body the runtime got."""

    async def connect(self) -> None:
        async with browser() as session:
            result = await run_connect(
                session, await start_connect(self.api, BROKER_URL, self.connector)
            )
        assert result["status"] == "connected", result
        self.connection_id = result["connection_id"]
        minted = await self.api.post(
            "/v1/runtime-tokens", headers=admin(), json={"connection_id": self.connection_id}
        )
        self.runtime = str((await minted.json())["token"])

    async def read(self, path: str = "access-token", method: str = "GET") -> aiohttp.ClientResponse:
        resp = await self.api.request(
            method, f"/v1/runtime/oauth/{path}", headers={"Authorization": f"Bearer {self.runtime}"}
        )
        if resp.status >= 400:
            self.errors.append(await resp.text())
        await resp.read()
        return resp

    async def token(self) -> dict[str, Any]:
        resp = await self.read()
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def view(self) -> dict[str, Any]:
        resp = await self.api.get(f"/v1/connections/{self.connection_id}", headers=admin())
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body

    async def record(self) -> Connection:
        raw = await self.app[CONTEXT].store.get(keys.connection(self.connection_id))
        assert raw is not None
        return Connection.model_validate_json(raw[0])


async def refresh_outcomes(api: aiohttp.ClientSession) -> Counter[tuple[str, str]]:
    """broker_token_refreshes_total by (connector, outcome), as Prometheus scrapes it."""
    text = await (await api.get("/metrics")).text()
    found: Counter[tuple[str, str]] = Counter()
    pattern = r'broker_token_refreshes_total\{connector="([^"]+)",outcome="([^"]+)"\} (\S+)'
    for connector, outcome, value in re.findall(pattern, text):
        found[connector, outcome] = int(float(value))
    return found


def expiry_of(token: dict[str, Any]) -> float:
    """When the token expires at the latest: `expires_at` is whole seconds, truncated."""
    return calendar.timegm(time.strptime(token["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) + 1.0


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))


async def survives(
    conn: Runtime, endpoint: FaultyTokenEndpoint, oidc: OidcPeer, fault: str
) -> None:
    outcome, last_error = FAULTS[fault]
    first = await conn.token()
    old, expires = first["access_token"], expiry_of(first)
    # stale (under half its life left, the capped margin) but valid for a few more seconds
    await sleep_until(expires - TTL / 2 + 0.2)
    counted = await refresh_outcomes(conn.api)
    endpoint.armed.add(fault)

    served = await conn.token()  # the broker tries to refresh it, and fails
    assert served["access_token"] == old
    assert endpoint.refreshes[fault] == 1
    counts = await refresh_outcomes(conn.api)
    assert counts[fault, outcome] == counted[fault, outcome] + 1, fault
    view = await conn.view()
    assert (view["status"], view["refresh"]["last_error"], view["refresh"]["failures"]) == (
        "active",
        last_error,
        1,
    )
    record = (await conn.record()).refresh
    assert record.last_error_at is not None and record.next_attempt_at is not None
    least = RETRY_AFTER if fault == "throttled" else policy.BACKOFF_BASE * policy.BACKOFF_JITTER[0]
    assert record.next_attempt_at >= record.last_error_at + least, fault
    assert await works_at_the_provider(oidc, old)

    # backing off: the still-valid token is served, the provider is left alone
    for _ in range(3):
        assert (await conn.token())["access_token"] == old
    assert endpoint.refreshes[fault] == 1

    await sleep_until(expires + 0.2)  # it has expired: nothing valid is left to serve
    dead = await conn.read()
    assert dead.status == 502, fault
    assert (await dead.json())["error"] == "provider_error"
    # past its own backoff an expired token is tried again; never inside a Retry-After
    assert endpoint.refreshes[fault] == (1 if fault == "throttled" else 2), fault

    endpoint.armed.discard(fault)
    if fault == "throttled":
        assert (await conn.read()).status == 502
        forced = await conn.read("refresh", "POST")
        assert forced.status == 429, await forced.text()
        assert 0 < int(forced.headers["Retry-After"]) <= RETRY_AFTER
        assert endpoint.refreshes[fault] == 1
        return
    recovered = await conn.token()
    assert recovered["access_token"] != old
    assert await works_at_the_provider(oidc, recovered["access_token"])
    view = await conn.view()
    assert (view["refresh"]["failures"], view["refresh"]["last_error"]) == (0, None)


async def test_every_fault_is_classed_backed_off_and_the_last_valid_token_served(
    oidc: OidcPeer,
    endpoint: FaultyTokenEndpoint,
    broker: web.Application,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession(base_url=BROKER_URL) as api:
        conns = {key: Runtime(api, broker, key) for key in FAULTS}
        await asyncio.gather(*(conn.connect() for conn in conns.values()))
        await asyncio.gather(
            *(survives(conn, endpoint, oidc, fault) for fault, conn in conns.items())
        )
    assert CANARY not in caplog.text
    bodies = [body for conn in conns.values() for body in conn.errors]
    assert bodies and not any(CANARY in body or "Sign in" in body for body in bodies)
