"""`broker serve` stopped by SIGTERM, as an orchestrator stops it: new connections are refused
at once, a request in flight finishes, one that outlasts `BROKER_SHUTDOWN_GRACE` is cut, the
audit entries of the last moment are flushed, and the process exits 0 within the bound."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from broker.crypto import Keyring, save_keyring
from tests.e2e.harness import free_port
from tests.e2e.processes import BrokerProcess
from tests.helpers import ADMIN_TOKEN, admin, served

GRACE = 3.0
SLOW = 1.5
"""Seconds the fake runtime takes to accept `sk_slow` settings (`sk_stuck`: forever)."""


class Runtime:
    """The platform runtime's testConnection route: slow or stuck on demand."""

    def __init__(self) -> None:
        self.arrived: dict[str, asyncio.Event] = {
            "sk_slow": asyncio.Event(),
            "sk_stuck": asyncio.Event(),
        }
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self.check)

    async def check(self, request: web.Request) -> web.Response:
        key = (await request.json())["api_key"]
        if key in self.arrived:
            self.arrived[key].set()
            await asyncio.sleep(SLOW if key == "sk_slow" else 3600)
        return web.json_response({"ok": True})


def broker_env(tmp: Path, runtime_url: str) -> dict[str, str]:
    keyring = tmp / "keyring.json"
    save_keyring(keyring, Keyring.generate("k1"))
    return {
        "BROKER_STORE": f"sqlite:///{tmp / 'broker.db'}",
        "BROKER_KEYRING_FILE": str(keyring),
        "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
        "BROKER_RUNTIME_URL": runtime_url,
        "BROKER_SHUTDOWN_GRACE": str(GRACE),
        "BROKER_REQUEST_TIMEOUT": "0",  # the stuck request is for the grace to cut
    }


async def create(api: aiohttp.ClientSession, url: str, key: str) -> aiohttp.ClientResponse:
    body = {"tenant_id": "t1", "connector": "stripe", "settings": {"api_key": key}}
    return await api.post(f"{url}/v1/connections", json=body, headers=admin())


async def refused(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/healthz"):
            return False
    except aiohttp.ClientConnectorError:
        return True


async def test_sigterm_drains_and_exits_0_within_the_grace(tmp_path: Path) -> None:
    runtime = Runtime()
    async with served(runtime.app) as runtime_url:
        env = broker_env(tmp_path, runtime_url)
        broker = BrokerProcess(free_port(), env, tmp_path / "broker.log")
        await asyncio.to_thread(broker.start)
        assert broker.proc is not None
        try:
            async with aiohttp.ClientSession() as api:
                made = await create(api, broker.url, "sk_fast")
                cid = (await made.json())["id"]
                minted = await api.post(
                    f"{broker.url}/v1/runtime-tokens", json={"connection_id": cid}, headers=admin()
                )
                token = (await minted.json())["token"]
                slow = asyncio.ensure_future(create(api, broker.url, "sk_slow"))
                stuck = asyncio.ensure_future(create(api, broker.url, "sk_stuck"))
                await runtime.arrived["sk_slow"].wait()
                await runtime.arrived["sk_stuck"].wait()
                # audited, and still in the buffer (it is written once a second)
                last = await api.get(
                    f"{broker.url}/v1/runtime/secrets/last_moment",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert last.status == 403
                broker.proc.send_signal(signal.SIGTERM)
                stopped_at = time.monotonic()

                while not await refused(broker.url):
                    await asyncio.sleep(0.05)
                assert broker.proc.poll() is None  # refused while still finishing its work
                assert (await slow).status == 201
                try:
                    answer = await stuck
                    raise AssertionError(f"the stuck request was answered: {answer.status}")
                except aiohttp.ClientError:
                    pass  # cut when the grace ran out

                code = await asyncio.to_thread(broker.proc.wait, 30)
                took = time.monotonic() - stopped_at
        finally:
            broker.kill()
    log = (tmp_path / "broker.log").read_text()
    assert code == 0, log
    assert GRACE <= took < GRACE + 5, (took, log)
    assert "shutting down: 2 requests in flight" in log and "shut down" in log
    assert "Traceback" not in log

    # what the last second audited was written before the exit
    again = BrokerProcess(free_port(), env, tmp_path / "again.log")
    await asyncio.to_thread(again.start)
    try:
        async with aiohttp.ClientSession() as api:
            page = await api.get(
                f"{again.url}/v1/audit?tenant_id=t1&connection_id={cid}", headers=admin()
            )
            entries = (await page.json())["entries"]
            listed = await api.get(f"{again.url}/v1/connections?tenant_id=t1", headers=admin())
            connections = (await listed.json())["connections"]
    finally:
        again.stop()
    assert ("last_moment", "not_granted") in {(e["name"], e["outcome"]) for e in entries}
    # the fast and the slow connection were made; the cut one was not
    assert len(connections) == 2
