"""The egress proxy against a direct call to the same provider, in one run.

    .venv/bin/python bench/proxy.py [--calls 2000] [--duration 5] [--connections 32]

Starts, on this machine: a fake provider API (a bare aiohttp app on uvloop, on 127.0.0.2)
answering a small JSON body and a 50 MB body, and a broker process (SQLite store) with an
API-key connector whose `permissions.http` lists it. Then, each time direct and proxied in
the same run:

- latency: `--calls` sequential GETs of the small JSON over one keep-alive connection,
  direct and through the proxy's path form interleaved in rounds of 100; p50 and p99 of
  each, and the proxy's overhead at p50 (target: under 1 ms);
- throughput: `--connections` aiohttp client tasks calling back to back for `--duration`
  seconds, each way (target: proxied at least 0.5x direct); and wrk on each URL, which
  says what the servers themselves can answer (the bare provider is far cheaper per call
  than any client, so this ratio is the proxy's cost against no work at all);
- streaming: the 50 MB body read to its end 3 times each way, best time of each (target:
  proxied at least 0.8x direct).

Prints a markdown table. Everything shares the machine's cores (the provider, the broker,
wrk and this process), as it would on a small host: the ratios say what the proxy costs
beside the provider call it makes, not what a dedicated core would do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from common import ADMIN, call, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.2"
BIG = 50 * 1024 * 1024

PROVIDER = """
import sys
from aiohttp import web
SMALL = b'{"object":"list","data":[{"id":"cus_A1","name":"Ada"},{"id":"cus_B2","name":"Bob"}]}'
CHUNK = b"x" * 262144
async def small(request):
    return web.Response(body=SMALL, content_type="application/json")
async def big(request):
    size = int(request.query["size"])
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = size
    await resp.prepare(request)
    sent = 0
    while sent < size:
        piece = CHUNK[: size - sent]
        await resp.write(piece)
        sent += len(piece)
    return resp
app = web.Application()
app.router.add_get("/v1/customers", small)
app.router.add_get("/big", big)
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    import asyncio
    loop = asyncio.new_event_loop()
web.run_app(app, host=sys.argv[1], port=int(sys.argv[2]), print=None, access_log=None, loop=loop)
"""


def manifest(port: int) -> dict[str, object]:
    return {
        "key": "bench-proxy",
        "name": "bench-proxy",
        "provider": "bench",
        "kind": "source",
        "version": "1.0.0",
        "permissions": {"http": [f"http://{HOST}:{port}/*"]},
        "connection": {
            "settingsSchema": {
                "type": "object",
                "properties": {"api_key": {"type": "string", "x-secret": True}},
            },
            "httpAuth": {"type": "bearer", "secret": "api_key"},
        },
    }


async def latencies(direct: str, proxied: str, token: str, calls: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"direct": [], "proxied": []}
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        for url, hdrs in ((direct, {}), (proxied, headers)):  # warm both connections
            for _ in range(50):
                async with http.get(url, headers=hdrs) as resp:
                    await resp.read()
        for _ in range(calls // 100):
            for name, url, hdrs in (("direct", direct, {}), ("proxied", proxied, headers)):
                for _ in range(100):
                    started = time.perf_counter()
                    async with http.get(url, headers=hdrs) as resp:
                        await resp.read()
                        assert resp.status == 200, resp.status
                    out[name].append(time.perf_counter() - started)
    return out


async def throughput(url: str, headers: dict[str, str], seconds: float, tasks: int) -> float:
    """Requests/s of `tasks` aiohttp clients calling `url` back to back for `seconds`."""
    done = 0
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=tasks), auto_decompress=False
    ) as http:
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with http.get(url, headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(tasks)))
        return done / (time.perf_counter() - started)


async def stream_seconds(url: str, headers: dict[str, str]) -> float:
    best = float("inf")
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for _ in range(3):
            started = time.perf_counter()
            got = 0
            async with http.get(url, headers=headers) as resp:
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    got += len(chunk)
            assert got == BIG, got
            best = min(best, time.perf_counter() - started)
    return best


def wrk(url: str, token: str | None, duration: int, connections: int) -> float:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url]
    if token:
        args[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None or "Non-2xx" in out:
        raise SystemExit(f"wrk failed:\n{out}")
    return float(found.group(1))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    provider_port, broker_port, redis_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "connectors" / "bench-proxy").mkdir(parents=True)
        (work / "connectors" / "bench-proxy" / "manifest.json").write_text(
            json.dumps(manifest(provider_port))
        )
        keyring = work / "keyring.json"
        subprocess.run(
            [sys.executable, "-m", "broker.cli", "keys", "generate", "--out", str(keyring)],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        env = {
            "BROKER_STORE": f"redis://127.0.0.1:{redis_port}/0",
            "BROKER_KEYRING_FILE": str(keyring),
            "BROKER_ADMIN_TOKEN": ADMIN,
            "BROKER_PUBLIC_URL": "http://127.0.0.1:8080",
            "BROKER_CONNECTORS_DIRS": str(work / "connectors"),
            "BROKER_PORT": str(broker_port),
            "BROKER_LOG_LEVEL": "WARNING",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
        }
        try:
            procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                    stdout=subprocess.DEVNULL,
                )
            )
            procs.append(
                subprocess.Popen([sys.executable, "-c", PROVIDER, HOST, str(provider_port)])
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "broker.cli", "serve"],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            broker = f"http://127.0.0.1:{broker_port}"
            direct = f"http://{HOST}:{provider_port}"
            wait_http(f"{broker}/healthz")
            wait_http(f"{direct}/v1/customers")
            conn = call(
                "POST",
                f"{broker}/v1/connections",
                {"tenant_id": "t", "connector": "bench-proxy", "settings": {"api_key": "sk_b"}},
            )
            token = call("POST", f"{broker}/v1/runtime-tokens", {"connection_id": conn["id"]})
            token = token["token"]
            proxied = f"{broker}/v1/runtime/proxy/http/{HOST}:{provider_port}"
            lat = asyncio.run(
                latencies(f"{direct}/v1/customers", f"{proxied}/v1/customers", token, args.calls)
            )
            auth = {"Authorization": f"Bearer {token}"}
            rps = {
                "direct": asyncio.run(
                    throughput(f"{direct}/v1/customers", {}, args.duration, args.connections)
                ),
                "proxied": asyncio.run(
                    throughput(f"{proxied}/v1/customers", auth, args.duration, args.connections)
                ),
            }
            wrk_direct = wrk(f"{direct}/v1/customers", None, args.duration, args.connections)
            wrk_proxied = wrk(f"{proxied}/v1/customers", token, args.duration, args.connections)
            big = f"/big?size={BIG}"
            s_direct = asyncio.run(stream_seconds(direct + big, {}))
            s_proxied = asyncio.run(
                stream_seconds(proxied + big, {"Authorization": f"Bearer {token}"})
            )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    d50, p50 = pct(lat["direct"], 0.5), pct(lat["proxied"], 0.5)
    mb = BIG / 1024 / 1024
    print("| measure | direct | proxied | proxied / direct |")
    print("|---|---|---|---|")
    print(
        f"| latency p50, ms ({len(lat['direct'])} calls) | {d50:.3f} | {p50:.3f} | "
        f"overhead {p50 - d50:.3f} ms |"
    )
    print(
        f"| latency p99, ms | {pct(lat['direct'], 0.99):.3f} | {pct(lat['proxied'], 0.99):.3f} | |"
    )
    print(
        f"| throughput, requests/s (aiohttp client, {args.connections} tasks) | "
        f"{rps['direct']:,.0f} | {rps['proxied']:,.0f} | {rps['proxied'] / rps['direct']:.2f}x |"
    )
    print(
        f"| server capacity, requests/s (wrk -c{args.connections}) | {wrk_direct:,.0f} | "
        f"{wrk_proxied:,.0f} | {wrk_proxied / wrk_direct:.2f}x |"
    )
    print(
        f"| streaming 50 MB, MB/s (best of 3) | {mb / s_direct:,.0f} | "
        f"{mb / s_proxied:,.0f} | {s_direct / s_proxied:.2f}x |"
    )
    print(
        f"\nstatistics: p50 overhead {p50 - d50:.3f} ms (median of all: "
        f"{(statistics.median(lat['proxied']) - statistics.median(lat['direct'])) * 1000:.3f})"
    )


if __name__ == "__main__":
    main()
