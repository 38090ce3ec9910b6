"""Refreshes that race something: a reconnect, an unrelated write, the end of their own lock,
a runtime that keeps forcing them. Same oidc-provider (rotating refresh tokens) and token
proxy as `test_refresh`, whose fixtures these tests share."""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from broker.config import Settings
from broker.errors import LockLost
from broker.services import connections, events, refresh
from broker.services.records import StoredToken
from broker.services.refresh import lock as refresh_lock
from broker.store import keys
from broker.store.sqlite import SqliteStore
from broker.web.state import CONTEXT
from tests.e2e.harness import browser, run_connect, start_connect
from tests.e2e.test_refresh import (
    BROKER_URL,
    TokenProxy,
    api,
    connected,
    events_of,
    make_broker,
    oidc,
    proxy,
    revoke_grant,
    userinfo,
)
from tests.helpers import admin, metric
from tests.peers.oidc import OidcPeer

__all__ = ["api", "oidc", "proxy"]  # fixtures, used by name

FORCED_WINDOW = 60


@pytest.fixture
def broker_app(
    oidc: OidcPeer, tmp_path: Path, make_settings: Callable[..., Settings]
) -> web.Application:
    return make_broker(
        oidc, tmp_path, make_settings, refresher=False, forced_refresh_interval=FORCED_WINDOW
    )


def forced(api: aiohttp.ClientSession, runtime: str) -> asyncio.Future[aiohttp.ClientResponse]:
    """A forced refresh, started now and answered later."""
    return asyncio.ensure_future(
        api.post("/v1/runtime/oauth/refresh", headers={"Authorization": f"Bearer {runtime}"})
    )


async def stored(app: web.Application, connection_id: str) -> StoredToken:
    conn, _ = await connections.get(app[CONTEXT], connection_id)
    assert conn.token is not None
    return conn.token


async def test_a_refresh_in_flight_does_not_undo_a_reconnect(
    api: aiohttp.ClientSession, oidc: OidcPeer, proxy: TokenProxy, broker_app: web.Application
) -> None:
    """The old grant's refresh answers after the tenant reconnected: the new grant wins."""
    connection_id, runtime = await connected(api, "flaky")
    proxy.held, proxy.reached = asyncio.Event(), asyncio.Event()
    refreshing = forced(api, runtime)
    await asyncio.wait_for(proxy.reached.wait(), 5)
    async with browser() as session:
        result = await run_connect(
            session, await start_connect(api, BROKER_URL, "flaky", connection_id=connection_id)
        )
    assert (result["status"], result["connection_id"]) == ("connected", connection_id)
    reconnected = await stored(broker_app, connection_id)
    superseded = metric(
        "broker_token_refreshes_dropped_total", connector="flaky", reason="superseded"
    )
    proxy.held.set()
    resp = await refreshing
    assert resp.status == 200
    assert (await resp.json())["access_token"] == reconnected.access_token
    assert await stored(broker_app, connection_id) == reconnected
    assert (
        metric("broker_token_refreshes_dropped_total", connector="flaky", reason="superseded")
        == superseded + 1
    )
    assert await userinfo(oidc, reconnected.access_token) == 200


async def test_invalid_grant_after_an_unrelated_write_still_needs_reauth(
    api: aiohttp.ClientSession, oidc: OidcPeer, proxy: TokenProxy, broker_app: web.Application
) -> None:
    connection_id, runtime = await connected(api, "flaky")
    await revoke_grant(oidc, broker_app, connection_id, "flaky-client")
    proxy.held, proxy.reached = asyncio.Event(), asyncio.Event()
    refreshing = forced(api, runtime)
    await asyncio.wait_for(proxy.reached.wait(), 5)
    # an admin write the refresh knows nothing about lands while the provider answers
    ctx = broker_app[CONTEXT]
    conn, version = await connections.get(ctx, connection_id)
    await events.save(ctx, conn.model_copy(update={"updated_at": ctx.clock()}), version)
    proxy.held.set()
    resp = await refreshing
    assert resp.status == 409
    assert (await resp.json())["error"] == "needs_reauth"
    view = await (await api.get(f"/v1/connections/{connection_id}", headers=admin())).json()
    assert (view["status"], view["refresh"]["last_error"]) == ("needs_reauth", "invalid_grant")
    assert [t for t, _ in await events_of(api, connection_id)][-1] == "connection.needs_reauth"


async def test_a_refresh_whose_lock_ran_out_leaves_its_answer_to_the_next_holder(
    api: aiohttp.ClientSession,
    oidc: OidcPeer,
    proxy: TokenProxy,
    broker_app: web.Application,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The lock expires while the provider answers and another replica takes it: the late
    answer is not written onto the record under the new holder, but it is not lost either:
    it waits in the refresh journal, and the next holder applies it instead of spending the
    (now rotated) refresh token a second time."""
    connection_id, runtime = await connected(api, "flaky")
    before = await stored(broker_app, connection_id)
    oidc.reset_stats()
    proxy.held, proxy.reached = asyncio.Event(), asyncio.Event()
    refreshing = forced(api, runtime)
    await asyncio.wait_for(proxy.reached.wait(), 5)
    lock = keys.refresh_lock(connection_id)
    with closing(sqlite3.connect(tmp_path / "broker.db")) as db, db:
        db.execute("UPDATE locks SET expires_at = 0 WHERE key = ?", (lock,))
    other = await SqliteStore.open(str(tmp_path / "broker.db"))  # another replica
    try:
        owner = await other.acquire(lock, 60)
        assert owner is not None
        lost = metric("broker_token_refreshes_dropped_total", connector="flaky", reason="lock_lost")
        proxy.held.set()
        for _ in range(250):
            if (
                metric(
                    "broker_token_refreshes_dropped_total", connector="flaky", reason="lock_lost"
                )
                > lost
            ):
                break
            await asyncio.sleep(0.02)
        assert await stored(broker_app, connection_id) == before
        assert (
            metric("broker_token_refreshes_dropped_total", connector="flaky", reason="lock_lost")
            == lost + 1
        )
        assert not refreshing.done()  # it waits for the new holder
        await other.release(lock, owner)
    finally:
        await other.close()
    resp = await refreshing  # the lock is free again: this caller recovers the late answer
    assert resp.status == 200
    token = (await resp.json())["access_token"]
    recovered = await stored(broker_app, connection_id)
    assert token == recovered.access_token != before.access_token
    assert await userinfo(oidc, token) == 200
    assert oidc.token_requests("refresh_token") == 1  # the rotated token was not spent again
    assert oidc.stats()["token_errors"] == {}
    assert "lock_lost" in caplog.text
    for secret in (token, recovered.refresh_token or "", before.refresh_token or ""):
        assert secret not in caplog.text


async def test_a_runtime_looping_on_forced_refresh_reaches_the_provider_once(
    api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    _, runtime = await connected(api)
    oidc.reset_stats()
    headers = {"Authorization": f"Bearer {runtime}"}
    tokens = set()
    for _ in range(20):
        resp = await api.post("/v1/runtime/oauth/refresh", headers=headers)
        assert resp.status == 200
        tokens.add((await resp.json())["access_token"])
    assert len(tokens) == 1
    assert oidc.token_requests("refresh_token") == 1
    (token,) = tokens
    assert await userinfo(oidc, token) == 200


async def test_a_forced_refresh_too_soon_with_an_expired_token_is_429(
    api: aiohttp.ClientSession, oidc: OidcPeer
) -> None:
    _, runtime = await connected(api)
    headers = {"Authorization": f"Bearer {runtime}"}
    first = await api.post("/v1/runtime/oauth/refresh", headers=headers)
    assert first.status == 200
    expires_at = (await first.json())["expires_at"]
    expires = calendar.timegm(time.strptime(expires_at, "%Y-%m-%dT%H:%M:%SZ"))
    oidc.reset_stats()
    await asyncio.sleep(max(0.0, expires + 1.0 - time.time()))  # expired, still in the window
    resp = await api.post("/v1/runtime/oauth/refresh", headers=headers)
    assert resp.status == 429
    body = await resp.json()
    assert body["error"] == "rate_limited" and body["message"]
    assert 1 <= int(resp.headers["Retry-After"]) <= FORCED_WINDOW
    assert oidc.token_requests("refresh_token") == 0
    # the plain read is not limited: it refreshes the expired token
    fresh = await api.get("/v1/runtime/oauth/access-token", headers=headers)
    assert fresh.status == 200
    assert oidc.token_requests("refresh_token") == 1


async def test_a_holder_with_too_little_lock_left_does_not_call_the_provider(
    api: aiohttp.ClientSession, proxy: TokenProxy, broker_app: web.Application
) -> None:
    connection_id, _ = await connected(api, "flaky")
    before = await stored(broker_app, connection_id)
    ctx = broker_app[CONTEXT]
    proxy.reached = asyncio.Event()
    async with refresh_lock.holding(ctx, connection_id) as held:
        assert held is not None
        # the reads before the provider call took all but the share kept for the writes
        nearly_out = dataclasses.replace(
            held, expires_by=time.monotonic() + held.ttl * refresh_lock.WRITE_SHARE
        )
        with pytest.raises(LockLost):
            await refresh.refresh_locked(
                ctx, connection_id, nearly_out, min_ttl=0, force=True, since=ctx.clock()
            )
    assert not proxy.reached.is_set()
    assert await stored(broker_app, connection_id) == before
