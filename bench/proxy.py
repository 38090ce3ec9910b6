"""The egress proxy against a direct call to the same provider, in one run.

    .venv/bin/python bench/proxy.py [--calls 2000] [--duration 5] [--connections 32]
                                    [--streams 3] [--root CHECKOUT]

Starts, on this machine (`proxy_stack`): a fake provider API (a bare aiohttp app on uvloop,
on 127.0.0.2) answering a small JSON body and a 50 MB body, and a broker process on its own
redis-server with an API-key connector whose `permissions.http` lists it. Then, each time
direct and proxied in the same run:

- latency: `--calls` sequential GETs of the small JSON over one keep-alive connection,
  direct and through the proxy's path form interleaved in rounds of 100; p50 and p99 of
  each, and the proxy's overhead at p50 (target: under 1 ms);
- throughput: `--connections` aiohttp client tasks calling back to back for `--duration`
  seconds, each way (target: proxied at least 0.5x direct); and wrk on each URL, which
  says what the servers themselves can answer (the bare provider is far cheaper per call
  than any client, so this ratio is the proxy's cost against no work at all);
- streaming: the 50 MB body read to its end `--streams` times each way (3), best time of
  each (target: proxied at least 0.8x direct).

Beside the times, the CPU each process used (user + system, from /proc) per call in the
throughput runs and per 50 MB streamed: the client (this process), the provider and the
broker. They bound the ratios whatever the scheduling: a call (or a 50 MB body) takes at
least the CPU of the busiest process (each runs on one core at a time) and at least the
CPU of all three over the machine's cores (`floor`); the CPU-bound ratio is direct's
floor over proxied's.

Prints markdown tables. Everything shares the machine's cores (the provider, the broker,
wrk and this process), as it would on a small host: the ratios say what the proxy costs
beside the provider call it makes, not what a dedicated core would do.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from proxy_stack import ROOT, Stack, cpu_seconds, proxy_stack

BIG = 50 * 1024 * 1024
PROCESSES = ("client", "provider", "broker")


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
    """Requests/s of `tasks` aiohttp clients calling `url` back to back for `seconds`
    (`done`, the calls made, is kept in `CALLS` for the CPU per call)."""
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
        CALLS.append(done)
        return done / (time.perf_counter() - started)


CALLS: list[int] = []


async def stream_seconds(url: str, headers: dict[str, str], times: int) -> float:
    best = float("inf")
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for _ in range(times):
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


def measured(
    stack: Stack, run: Callable[[], Coroutine[Any, Any, float]]
) -> tuple[float, list[float]]:
    """`run`'s result and the CPU seconds each of `PROCESSES` spent meanwhile."""
    pids = (os.getpid(), stack.provider_pid, stack.broker_pid)
    before = [cpu_seconds(pid) for pid in pids]
    result: float = asyncio.run(run())
    return result, [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]


def floor(used: list[float]) -> float:
    """The least time the work of `used` (CPU seconds per process) can take."""
    return max(max(used), sum(used) / (os.cpu_count() or 1))


def cpu_row(label: str, direct: list[float], proxied: list[float], per: float) -> str:
    cells = " | ".join(
        f"{d * per:,.0f} / {p * per:,.0f}" for d, p in zip(direct, proxied, strict=True)
    )
    return f"| {label} | {cells} | {sum(direct) * per:,.0f} / {sum(proxied) * per:,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run it from")
    args = parser.parse_args()
    with proxy_stack(args.root.resolve()) as stack:
        direct, proxied, token = stack.provider, stack.proxied, stack.token
        auth = {"Authorization": f"Bearer {token}"}
        small = "/v1/customers"
        lat = asyncio.run(latencies(direct + small, proxied + small, token, args.calls))
        rps: dict[str, float] = {}
        cpu: dict[str, list[float]] = {}
        for name, base, headers in (("direct", direct, {}), ("proxied", proxied, auth)):
            run = functools.partial(
                throughput, base + small, headers, args.duration, args.connections
            )
            rps[name], used = measured(stack, run)
            cpu[name] = [seconds / CALLS[-1] for seconds in used]
        wrk_direct = wrk(direct + small, None, args.duration, args.connections)
        wrk_proxied = wrk(proxied + small, token, args.duration, args.connections)
        big = f"/big?size={BIG}"
        s_direct, cpu["s_direct"] = measured(
            stack, functools.partial(stream_seconds, direct + big, {}, args.streams)
        )
        s_proxied, cpu["s_proxied"] = measured(
            stack, functools.partial(stream_seconds, proxied + big, auth, args.streams)
        )
    d50, p50 = pct(lat["direct"], 0.5), pct(lat["proxied"], 0.5)
    mb = BIG / 1024 / 1024
    print("| measure | direct | proxied | proxied / direct |")
    print("|---|--:|--:|--:|")
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
        f"| streaming 50 MB, MB/s (best of {args.streams}) | {mb / s_direct:,.0f} | "
        f"{mb / s_proxied:,.0f} | {s_direct / s_proxied:.2f}x |"
    )
    print(
        f"\nstatistics: p50 overhead {p50 - d50:.3f} ms (median of all: "
        f"{(statistics.median(lat['proxied']) - statistics.median(lat['direct'])) * 1000:.3f})"
    )
    bound = floor(cpu["direct"]) / floor(cpu["proxied"])
    s_bound = floor(cpu["s_direct"]) / floor(cpu["s_proxied"])
    print("\nCPU (user + system), direct / proxied:\n")
    print(f"| per | {' | '.join(PROCESSES)} | all three |")
    print("|---|--:|--:|--:|--:|")
    print(cpu_row("call (throughput runs), us", cpu["direct"], cpu["proxied"], 1e6))
    print(cpu_row("50 MB streamed, ms", cpu["s_direct"], cpu["s_proxied"], 1000 / args.streams))
    print(f"\nCPU-bound ratios: throughput {bound:.2f}x, streaming {s_bound:.2f}x")


if __name__ == "__main__":
    main()
