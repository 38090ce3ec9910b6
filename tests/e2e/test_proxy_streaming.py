"""A 50 MB provider answer streams through the egress proxy of a broker process whose memory
stays flat: its resident set is sampled (`/proc/<pid>/status`) while the body passes, and
grows by far less than the body (the proxy never holds an answer whole)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from broker.crypto import Keyring, save_keyring
from tests.e2e.harness import free_port, write_connectors
from tests.e2e.processes import BrokerProcess
from tests.helpers import ADMIN_TOKEN, admin
from tests.web.proxy.conftest import AUTHS, CANARY, api_key_manifest
from tests.web.proxy.fake_api import FakeApi, fake_api_fixture

SIZE = 50 * 1024 * 1024
MIB = 1024 * 1024

fake = fake_api_fixture()


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (the peak so far) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


async def test_a_50_mb_answer_streams_through_in_flat_memory(
    tmp_path: Path, fake: tuple[FakeApi, int]
) -> None:
    _, port = fake
    keyring = tmp_path / "keyring.json"
    save_keyring(keyring, Keyring.generate("k1"))
    folder = write_connectors(
        tmp_path / "connectors", [api_key_manifest("px-bearer", port, AUTHS["px-bearer"])]
    )
    broker = BrokerProcess(
        free_port(),
        {
            "BROKER_STORE": f"sqlite:///{tmp_path / 'broker.db'}",
            "BROKER_KEYRING_FILE": str(keyring),
            "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
            "BROKER_PUBLIC_URL": "http://127.0.0.1:8080",
            "BROKER_CONNECTORS_DIRS": str(folder),
        },
        tmp_path / "broker.log",
    )
    await asyncio.to_thread(broker.start)
    try:
        assert broker.proc is not None
        pid = broker.proc.pid
        async with aiohttp.ClientSession(base_url=broker.url) as http:
            resp = await http.post(
                "/v1/connections",
                headers=admin(),
                json={"tenant_id": "t", "connector": "px-bearer", "settings": {"api_key": CANARY}},
            )
            conn = (await resp.json())["id"]
            resp = await http.post(
                "/v1/runtime-tokens", headers=admin(), json={"connection_id": conn}
            )
            runtime = {"Authorization": f"Bearer {(await resp.json())['token']}"}
            url = f"/v1/runtime/proxy/http/127.0.0.2:{port}/big"
            async with http.get(url, params={"size": "1048576"}, headers=runtime) as warm:
                assert len(await warm.read()) == MIB  # every code path loaded once
            before = memory_kib(pid)
            peak, received, all_x = before["VmRSS"], 0, True
            async with http.get(url, params={"size": str(SIZE)}, headers=runtime) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Length"] == str(SIZE)
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    received += len(chunk)
                    all_x = all_x and chunk.count(b"x") == len(chunk)
                    peak = max(peak, memory_kib(pid)["VmRSS"])
            after = memory_kib(pid)
        assert received == SIZE and all_x
        grown_mib = (max(peak, after["VmHWM"]) - max(before["VmRSS"], before["VmHWM"])) / 1024
        print(json.dumps({"rss_before_kib": before, "rss_peak_kib": peak, "after": after}))
        assert (peak - before["VmRSS"]) / 1024 < 20, (before, peak)
        assert grown_mib < 20, (before, after)
        assert CANARY not in (tmp_path / "broker.log").read_text()
    finally:
        await asyncio.to_thread(broker.stop)
