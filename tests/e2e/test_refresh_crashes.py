"""Kill points: a real broker process SIGKILLed at every step of a refresh, against a provider
that rotates refresh tokens and either honours a reuse window or revokes the grant on reuse,
on the embedded SQLite store and on Redis; and Redis itself killed right after the provider
answered, then restarted. Every case ends in the row of `OUTCOMES` it states:

- ACTIVE: the connection is active and serves the provider's newest access token, and the
  refresh token it keeps is the live one (one more refresh works, and is no reuse);
- LOST: `needs_reauth` with `reauth_reason: refresh_lost`, 409 to the runtime, exactly one
  `connection.needs_reauth` event (reason `refresh_lost`);

and in every case: each token served at any point was valid at the provider when served, the
revoking provider never saw a spent refresh token again (`FakeProvider.violations`), the
window provider saw one exactly where the row says, and no token reached a log line.

The kills: `BROKER_TEST_CRASH_AT` (dev mode only) makes the broker SIGKILL itself at a point
between two store writes; "answered" is the provider's own doing (`FakeProvider`). Each store
runs one broker process per crash, restarted armed for the next case (crash points name one
connector): it first finishes the last case, then dies on its own. The two stores run side
by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from broker.crypto import Keyring, save_keyring
from tests.e2e.fake_provider import FakeProvider, Grant, Kind
from tests.e2e.harness import RETURN_ORIGIN, browser, free_port, run_connect, start_connect
from tests.e2e.processes import BrokerProcess
from tests.helpers import ADMIN_TOKEN, admin, served
from tests.store.redis_servers import RedisServer

Outcome = Literal["active", "lost"]
KINDS: tuple[Kind, ...] = ("window", "revoking")
POINTS = ("before_intent", "before_send", "answered", "after_journal", "after_apply")
OUTCOMES: dict[tuple[str, Kind], tuple[Outcome, int]] = {
    # (kill point, provider): (outcome, times the provider accepted a spent refresh token)
    # lock taken, nothing written: the next refresh starts afresh
    ("before_intent", "window"): ("active", 0),
    ("before_intent", "revoking"): ("active", 0),
    # intent written, request never sent: the broker cannot tell it from a lost answer. A
    # window provider gets the token again (its first use, as it happens); a revoking one is
    # never risked, and the tenant reconnects: the price of never reusing a spent token
    ("before_send", "window"): ("active", 0),
    ("before_send", "revoking"): ("lost", 0),
    # the provider rotated, the broker never saw the answer
    ("answered", "window"): ("active", 1),
    ("answered", "revoking"): ("lost", 0),
    # the answer is in the journal, not yet in the record: the next holder applies it
    ("after_journal", "window"): ("active", 0),
    ("after_journal", "revoking"): ("active", 0),
    # applied, lock and journal left behind: the journal is recognised and cleared
    ("after_apply", "window"): ("active", 0),
    ("after_apply", "revoking"): ("active", 0),
}
STORE_DOWN: dict[Kind, tuple[Outcome, int]] = {
    # Redis killed after the provider rotated, before its answer arrived: the broker holds
    # the answer until the store is back, then journals and applies it
    "window": ("active", 0),
    "revoking": ("active", 0),
}
STORE_WAIT = "waits for the store"
"""What the broker logs while it holds a provider's answer the store cannot take."""
SETTLE_SECONDS = 30.0
"""Liveness bound on recovery (lock TTL 2 s, refresher polls every 0.5 s), not a timing
assertion: a case still unsettled after this is a failure."""


@dataclass
class Case:
    point: str
    kind: Kind
    expected: tuple[Outcome, int]
    connection_id: str = ""
    runtime: str = ""
    grant: Grant | None = None

    @property
    def connector(self) -> str:
        return f"{self.kind}-{self.point}".replace("_", "-")

    def __str__(self) -> str:
        return f"{self.point}/{self.kind}"


def manifest(key: str, kind: Kind, fake_url: str) -> dict[str, Any]:
    oauth = {
        "authorizationUrlTemplate": f"{fake_url}/authorize",
        "tokenUrlTemplate": f"{fake_url}/{kind}/token",
        "scopes": ["read"],
        "client": {"credentialKey": "fake"},
        "rotatesRefreshTokens": True,
        "refreshTokenReuseSeconds": 600 if kind == "window" else 0,
    }
    return {
        "key": key,
        "name": key,
        "provider": "fake",
        "kind": "source",
        "version": "1.0.0",
        "permissions": {"http": [fake_url + "/*"]},
        "connection": {"settingsSchema": {"type": "object", "properties": {}}, "oauth": oauth},
    }


def broker_for(tmp: Path, store: str, cases: list[Case], fake_url: str) -> BrokerProcess:
    for case in cases:
        folder = tmp / "connectors" / case.connector
        folder.mkdir(parents=True)
        text = json.dumps(manifest(case.connector, case.kind, fake_url))
        (folder / "manifest.json").write_text(text)
    save_keyring(tmp / "keyring.json", Keyring.generate("k1"))
    port = free_port()
    env = {
        "BROKER_STORE": store,
        "BROKER_KEYRING_FILE": str(tmp / "keyring.json"),
        "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
        "BROKER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BROKER_ALLOWED_RETURN_ORIGINS": RETURN_ORIGIN,
        "BROKER_CONNECTORS_DIRS": str(tmp / "connectors"),
        "BROKER_REFRESH_LOCK_TTL": "2",
        "BROKER_FORCED_REFRESH_INTERVAL": "0",
        "BROKER_EVENTS_PULL_DELAY": "0",
    }
    return BrokerProcess(port, env, tmp / "broker.log", args=("--dev",), cwd=tmp)


async def start(broker: BrokerProcess, crash: Case | None) -> None:
    broker.env.pop("BROKER_TEST_CRASH_AT", None)
    if crash is not None and crash.point != "answered":
        broker.env["BROKER_TEST_CRASH_AT"] = f"{crash.point}:{crash.connector}"
    await asyncio.to_thread(broker.start)


def bearer(case: Case) -> dict[str, str]:
    return {"Authorization": f"Bearer {case.runtime}"}


async def connect(api: aiohttp.ClientSession, broker: BrokerProcess, case: Case) -> None:
    async with browser() as session:
        result = await run_connect(session, await start_connect(api, broker.url, case.connector))
    assert result["status"] == "connected", result
    case.connection_id = result["connection_id"]
    minted = await api.post(
        f"{broker.url}/v1/runtime-tokens",
        headers=admin(),
        json={"connection_id": case.connection_id, "ttl_seconds": 3600},
    )
    case.runtime = (await minted.json())["token"]


async def grant_of(
    api: aiohttp.ClientSession, broker: BrokerProcess, fake: FakeProvider, case: Case
) -> Grant:
    async with api.get(f"{broker.url}/v1/runtime/oauth/access-token", headers=bearer(case)) as resp:
        assert resp.status == 200, await resp.text()
        return fake.grant_of((await resp.json())["access_token"])


async def crash(api: aiohttp.ClientSession, broker: BrokerProcess, case: Case) -> None:
    """A forced refresh (the provider said 401) that the broker does not survive."""
    url = f"{broker.url}/v1/runtime/oauth/refresh"
    with contextlib.suppress(aiohttp.ClientError):
        async with api.post(url, headers=bearer(case)) as resp:
            body = await resp.text()
            raise AssertionError(f"{case}: answered {resp.status} instead of dying: {body}")
    assert broker.proc is not None
    code = await asyncio.to_thread(broker.proc.wait, 10)
    assert code == -signal.SIGKILL, f"{case}: exit code {code}"


async def settle(
    api: aiohttp.ClientSession, broker: BrokerProcess, fake: FakeProvider, case: Case
) -> int:
    """What the runtime is served, polled until the case has settled: the provider's newest
    access token, or 409. Every token served meanwhile must work at the provider."""
    assert case.grant is not None
    url = f"{broker.url}/v1/runtime/oauth/access-token"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        async with api.get(url, headers=bearer(case)) as resp:
            if resp.status == 409:
                return 409
            assert resp.status == 200, f"{case}: {resp.status} {await resp.text()}"
            token = (await resp.json())["access_token"]
        assert fake.valid(token), f"{case}: served a token the provider no longer accepts"
        if token == case.grant.newest:
            return 200
        if loop.time() > deadline:
            raise AssertionError(f"{case}: still serving a token older than the provider's newest")
        await asyncio.sleep(0.1)


async def check(
    api: aiohttp.ClientSession, broker: BrokerProcess, fake: FakeProvider, case: Case
) -> None:
    grant = case.grant
    assert grant is not None
    outcome, reuses = case.expected
    status = await settle(api, broker, fake, case)
    view = await (
        await api.get(f"{broker.url}/v1/connections/{case.connection_id}", headers=admin())
    ).json()
    reauth = [
        e
        for e in await events(api, broker)
        if e["connection_id"] == case.connection_id and e["type"] == "connection.needs_reauth"
    ]
    if outcome == "active":
        assert (status, view["status"], view["reauth_reason"]) == (200, "active", None), (
            f"{case}: {view}"
        )
        issued = len(grant.access)
        async with api.post(f"{broker.url}/v1/runtime/oauth/refresh", headers=bearer(case)) as resp:
            assert resp.status == 200, f"{case}: the kept refresh token failed: {await resp.text()}"
            assert (await resp.json())["access_token"] == grant.newest
        assert len(grant.access) == issued + 1, f"{case}: no refresh reached the provider"
        assert reauth == [], f"{case}: {reauth}"
    else:
        assert (status, view["status"], view["reauth_reason"]) == (
            409,
            "needs_reauth",
            "refresh_lost",
        ), f"{case}: {view}"
        assert [e["data"]["reason"] for e in reauth] == ["refresh_lost"], f"{case}: {reauth}"
    assert (grant.reuses, grant.revoked) == (reuses, False), f"{case}: {grant.reuses} reuses"


async def events(api: aiohttp.ClientSession, broker: BrokerProcess) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = ""
    while True:
        page = await (
            await api.get(f"{broker.url}/v1/events?after={after}&limit=500", headers=admin())
        ).json()
        found += page["events"]
        if not page["events"]:
            return found
        after = page["next"]


async def store_down(
    api: aiohttp.ClientSession,
    broker: BrokerProcess,
    fake: FakeProvider,
    case: Case,
    redis: RedisServer,
) -> None:
    """Redis dies once the provider has rotated the grant, and comes back once the broker
    has failed to store the answer (it logs that it holds it) or has given up."""
    assert case.grant is not None
    waited = broker.log.read_text().count(STORE_WAIT)
    answered = fake.end_refresh_with(case.grant, redis.kill)
    refreshing = asyncio.ensure_future(
        api.post(f"{broker.url}/v1/runtime/oauth/refresh", headers=bearer(case))
    )
    await asyncio.wait_for(answered.wait(), 10)
    for _ in range(200):  # or the broker gave up on the answer: the outcome tells
        if refreshing.done() or broker.log.read_text().count(STORE_WAIT) > waited:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"{case}: the broker never found the store gone")
    await asyncio.to_thread(redis.start)
    resp = await refreshing
    if resp.status == 200:
        assert fake.valid((await resp.json())["access_token"]), f"{case}: served a dead token"


async def run_store(
    tmp: Path, store: str, fake: FakeProvider, fake_url: str, redis: RedisServer | None
) -> list[Case]:
    cases = [Case(point, kind, OUTCOMES[point, kind]) for point in POINTS for kind in KINDS]
    down = [Case("store_down", kind, STORE_DOWN[kind]) for kind in KINDS] if redis else []
    tmp.mkdir()
    broker = broker_for(tmp, store, cases + down, fake_url)
    async with aiohttp.ClientSession() as api:
        await start(broker, cases[0])
        try:
            put = await api.put(
                f"{broker.url}/v1/oauth-apps/fake",
                headers=admin(),
                json={"client_id": "fake-client", "client_secret": "fake-secret"},
            )
            assert put.status == 200, await put.text()
            for case in cases + down:
                await connect(api, broker, case)
                case.grant = await grant_of(api, broker, fake, case)
            for i, case in enumerate(cases):
                assert broker.proc is not None and case.grant is not None
                if case.point == "answered":
                    fake.end_refresh_with(case.grant, fake.kill_process(broker.proc.pid))
                await crash(api, broker, case)
                await start(broker, cases[i + 1] if i + 1 < len(cases) else None)
                # recovered before the next case's kill, which would interrupt the recovery
                await settle(api, broker, fake, case)
            for case in down:
                assert redis is not None
                await store_down(api, broker, fake, case, redis)
            failed = []
            for case in cases + down:  # every case's verdict, not just the first one's
                try:
                    await check(api, broker, fake, case)
                except AssertionError as exc:
                    failed.append(f"{store.split(':')[0]} {exc}")
            assert failed == [], "\n".join(failed)
        finally:
            broker.stop()
    logged = broker.log.read_text()
    for case in cases + down:
        assert case.grant is not None
        leaked = [
            t for t in [*case.grant.access, *case.grant.spent, case.grant.refresh] if t in logged
        ]
        assert leaked == [], f"{case}: tokens in the broker's log"
    return cases + down


async def test_every_kill_point_on_both_stores(tmp_path: Path) -> None:
    fake = FakeProvider()
    sqlite = f"sqlite:///{tmp_path}/sqlite/broker.db"
    redis = RedisServer(tmp_path / "redis", None, "--appendonly", "yes", "--appendfsync", "always")
    async with served(fake.app) as fake_url:
        await asyncio.to_thread(redis.start)
        try:
            done = await asyncio.gather(
                run_store(tmp_path / "sqlite", sqlite, fake, fake_url, None),
                run_store(tmp_path / "redis-broker", redis.url, fake, fake_url, redis),
                return_exceptions=True,  # each store's run ends (and stops its broker) first
            )
        finally:
            redis.stop()
    for failed in done:
        if isinstance(failed, BaseException):
            raise failed
    assert fake.violations == []
    assert sum(len(c) for c in done if isinstance(c, list)) == 2 * len(OUTCOMES) + len(STORE_DOWN)
