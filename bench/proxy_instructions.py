"""Instructions per proxied call, counted by callgrind: the broker's CPU cost of the egress
proxy, deterministic where bench/proxy.py's requests/s move with the machine's load.

    .venv/bin/python bench/proxy_instructions.py [--calls 2000] [--root PATH] [--repeat 2]

Starts a redis-server, bench/proxy.py's fake provider (not under valgrind) and a broker
under `valgrind --tool=callgrind --instr-atstart=no` (background loops off: their polls
count by the wall-clock second, not by the call), with bench/proxy.py's API-key connector.
Warms up, then counts, one at a time: `--calls` proxied GETs of the small JSON answer over
8 kept-alive connections (path form), and a 10 MB streamed answer read 3 times. Prints
instructions per call and per streamed MB. `--root` runs the broker from another checkout
(an A/B of two commits: `git archive COMMIT | tar -x -C /tmp/before`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from common import ADMIN, call, free_port, wait_http
from proxy import HOST, PROVIDER, manifest
from runtime_instructions import counted

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 8
STREAMED = 10 * 1024 * 1024
STREAMS = 3


async def small_calls(url: str, token: str, count: int) -> None:
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        slots = asyncio.Semaphore(CONNECTIONS)

        async def one() -> None:
            async with slots, session.get(url) as resp:
                assert resp.status == 200, resp.status
                await resp.read()

        await asyncio.gather(*(one() for _ in range(count)))


async def streams(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, auto_decompress=False) as session:
        for _ in range(STREAMS):
            got = 0
            async with session.get(url) as resp:
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    got += len(chunk)
            assert got == STREAMED, got


def control(pid: int, state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True)


async def one_run(root: Path, count: int, tmp: Path) -> dict[str, float]:
    redis_port, provider_port, broker_port = free_port(), free_port(), free_port()
    (tmp / "connectors" / "bench-proxy").mkdir(parents=True, exist_ok=True)
    (tmp / "connectors" / "bench-proxy" / "manifest.json").write_text(
        json.dumps(manifest(provider_port))
    )
    keyring = tmp / "keyring.json"
    keyring.unlink(missing_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BROKER_")},
        "PYTHONPATH": str(root),
    }
    subprocess.run(
        [sys.executable, "-m", "broker.cli", "keys", "generate", "--out", str(keyring)],
        check=True,
        cwd=root,
        env=env,
        capture_output=True,
    )
    env |= {
        "BROKER_STORE": f"redis://127.0.0.1:{redis_port}/0",
        "BROKER_KEYRING_FILE": str(keyring),
        "BROKER_ADMIN_TOKEN": ADMIN,
        "BROKER_PORT": str(broker_port),
        "BROKER_CONNECTORS_DIRS": str(tmp / "connectors"),
        "BROKER_LOG_LEVEL": "WARNING",
        "BROKER_REFRESHER": "false",
        "BROKER_EVENTS_WORKER": "false",
        "PYTHONHASHSEED": "0",
    }
    out_file = tmp / "callgrind.out"
    redis_cmd = ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"]
    redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
    provider = subprocess.Popen([sys.executable, "-c", PROVIDER, HOST, str(provider_port)])
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    broker = subprocess.Popen(
        [
            *valgrind,
            f"--callgrind-out-file={out_file}",
            sys.executable,
            "-m",
            "broker.cli",
            "serve",
        ],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, float] = {}
    try:
        base = f"http://127.0.0.1:{broker_port}"
        await asyncio.to_thread(wait_http, f"{base}/readyz", 300)
        await asyncio.to_thread(wait_http, f"http://{HOST}:{provider_port}/v1/customers")
        body = {"tenant_id": "t", "connector": "bench-proxy", "settings": {"api_key": "sk_b"}}
        conn = await asyncio.to_thread(call, "POST", f"{base}/v1/connections", body)
        minted = await asyncio.to_thread(
            call, "POST", f"{base}/v1/runtime-tokens", {"connection_id": conn["id"]}
        )
        token = minted["token"]
        proxied = f"{base}/v1/runtime/proxy/http/{HOST}:{provider_port}"
        await small_calls(f"{proxied}/v1/customers", token, 200)  # warm-up
        await streams(f"{proxied}/big?size={STREAMED}", token)
        for name, run in (
            ("call", small_calls(f"{proxied}/v1/customers", token, count)),
            ("stream", streams(f"{proxied}/big?size={STREAMED}", token)),
        ):
            out_file.unlink(missing_ok=True)
            control(broker.pid, "on")
            await run
            control(broker.pid, "off")
            subprocess.run(["callgrind_control", "-d", str(broker.pid)], capture_output=True)
            dumped = sorted(tmp.glob("callgrind.out*"), key=lambda p: p.stat().st_mtime)[-1]
            per = count if name == "call" else STREAMS * STREAMED / 1024 / 1024
            results[name] = counted(dumped) / per
            for stale in tmp.glob("callgrind.out*"):
                stale.unlink()
    finally:
        broker.send_signal(signal.SIGINT)
        broker.wait(120)
        for proc in (provider, redis):
            proc.terminate()
            proc.wait(10)
    return results


async def run(root: Path, count: int, repeat: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-instr-"))
    try:
        print(f"broker from {root}; {count} proxied calls over {CONNECTIONS} connections")
        print("\n| run | small GET, instructions per call | streamed, instructions per MB |")
        print("|--:|--:|--:|")
        for n in range(1, repeat + 1):
            r = await one_run(root, count, tmp)
            print(f"| {n} | {r['call']:,.0f} | {r['stream']:,.0f} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run it from")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (Debian: valgrind, redis-server)")
    asyncio.run(run(args.root.resolve(), args.calls, args.repeat))


if __name__ == "__main__":
    main()
