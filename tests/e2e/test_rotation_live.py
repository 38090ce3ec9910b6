"""A full encryption-key rotation (add, promote, rewrap, retire) against two serving broker
processes under runtime load and concurrent settings changes: not one runtime request fails,
not one write is lost, and every record ends under the new key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from broker.crypto import Keyring, save_keyring
from tests.e2e.harness import free_port
from tests.e2e.processes import BrokerProcess, broker_cli
from tests.helpers import ADMIN_TOKEN, admin
from tests.store.redis_servers import RedisServer

CONNECTIONS = 40


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def wait_keyring(
    session: aiohttp.ClientSession, urls: list[str], primary: str, keys: list[str]
) -> None:
    for _ in range(100):
        states = [(await (await session.get(f"{u}/readyz")).json())["keyring"] for u in urls]
        if all(s["primary"] == primary and s["keys"] == keys for s in states):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"replicas did not pick up the keyring: {states}")


async def test_full_rotation_under_load(redis: RedisServer, tmp_path: Path) -> None:
    keyring = tmp_path / "keyring.json"
    save_keyring(keyring, Keyring.generate("k-old"))
    env = {
        "BROKER_STORE": redis.url,
        "BROKER_KEYRING_FILE": str(keyring),
        "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
        "BROKER_REFRESHER": "false",
        "BROKER_EVENTS_WORKER": "false",
    }
    brokers = [BrokerProcess(free_port(), env, tmp_path / f"b{i}.log") for i in range(2)]
    await asyncio.gather(*(asyncio.to_thread(b.start) for b in brokers))
    urls = [b.url for b in brokers]
    failures: list[str] = []
    expected: dict[str, str] = {}
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(CONNECTIONS):
                resp = await session.post(
                    f"{urls[i % 2]}/v1/connections",
                    headers=admin(),
                    json={
                        "tenant_id": f"t{i % 5}",
                        "connector": "stripe",
                        "settings": {"api_key": f"sk_test_{i}_v0"},
                    },
                )
                assert resp.status == 201
                expected[(await resp.json())["id"]] = f"sk_test_{i}_v0"
            ids = list(expected)

            async def runtime(worker: int) -> int:
                """A connector run: mint a short-lived token, read its key a few times."""
                reads = 0
                while not stop.is_set():
                    cid = ids[(worker + reads) % len(ids)]
                    url = urls[reads % 2]
                    minted = await session.post(
                        f"{url}/v1/runtime-tokens",
                        headers=admin(),
                        json={"connection_id": cid, "ttl_seconds": 2},
                    )
                    if minted.status != 201:
                        failures.append(f"mint {minted.status} {await minted.text()}")
                        continue
                    token = (await minted.json())["token"]
                    for n in range(5):
                        got = await session.get(
                            f"{urls[n % 2]}/v1/runtime/secrets/api_key",
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        if got.status != 200:
                            failures.append(f"read {got.status} {await got.text()}")
                        reads += 1
                return reads

            async def writer() -> int:
                changes = 0
                while not stop.is_set():
                    cid = ids[changes % len(ids)]
                    value = f"sk_test_{cid}_v{changes + 1}"
                    resp = await session.patch(
                        f"{urls[changes % 2]}/v1/connections/{cid}/settings",
                        headers=admin(),
                        json={"settings": {"api_key": value}},
                    )
                    if resp.status == 200:
                        expected[cid] = value
                    elif resp.status != 409:  # a lost CAS race is a retry, not a failure
                        failures.append(f"patch {resp.status} {await resp.text()}")
                    changes += 1
                return changes

            load = [asyncio.create_task(runtime(w)) for w in range(6)] + [
                asyncio.create_task(writer())
            ]
            await asyncio.sleep(0.5)
            broker_cli(env, "keys", "add", "--id", "k-new")
            await wait_keyring(session, urls, "k-old", ["k-new", "k-old"])
            broker_cli(env, "keys", "promote", "k-new")
            await wait_keyring(session, urls, "k-new", ["k-new", "k-old"])
            summary = await asyncio.to_thread(broker_cli, env, "keys", "rewrap")
            await asyncio.sleep(2.5)  # runtime tokens signed with k-old (2 s TTL) have expired
            retired = await asyncio.to_thread(broker_cli, env, "keys", "retire", "k-old")
            await wait_keyring(session, urls, "k-new", ["k-new"])
            await asyncio.sleep(1.0)  # keep the load on after the retirement
            stop.set()
            reads, *_, changes = await asyncio.gather(*load)
            assert failures == [], failures[:5]
            assert reads > 100 and changes > 10
            assert "rewrapped" in summary and " 0 failed" in summary, summary
            assert "k-old" in retired, retired
            for cid, value in expected.items():  # every write present, readable under k-new
                minted = await session.post(
                    f"{urls[0]}/v1/runtime-tokens", headers=admin(), json={"connection_id": cid}
                )
                token = (await minted.json())["token"]
                got = await session.get(
                    f"{urls[1]}/v1/runtime/secrets/api_key",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert (await got.json())["value"] == value
            final = broker_cli(env, "keys", "status")
            assert "k-old" not in final
    finally:
        stop.set()
        for broker in brokers:
            broker.stop()
    for log in tmp_path.glob("b*.log"):
        text = log.read_text()
        assert "sk_test_" not in text and "Traceback" not in text, text[-2000:]
