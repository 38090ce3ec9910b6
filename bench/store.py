"""Store throughput: get, CAS put and take on SqliteStore and RedisStore, beside raw redis-py.

    .venv/bin/python bench/store.py [--ops 20000] [--concurrency 64] [--repeat 3]

Each figure is operations per second for a fixed number of operations spread over
`concurrency` tasks (median of `--repeat` runs). The raw redis-py GET / SET / GETDEL numbers
are measured in the same run against the same server, so the ratio column shows what the
broker's layout and Lua scripts cost over the plainest possible Redis call. Prints a markdown
table. Redis keys live under a fresh namespace that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from broker.store import keys
from broker.store.base import Store
from broker.store.redis import RedisStore
from broker.store.sqlite import SqliteStore

Op = Callable[[int, int], Awaitable[object]]
"""One operation: (worker index, operation index) -> anything."""


@dataclass
class Args:
    ops: int
    concurrency: int
    repeat: int
    value_size: int
    redis_url: str


async def run_ops(op: Op, ops: int, concurrency: int) -> float:
    """Ops per second for `ops` calls of `op` shared by `concurrency` tasks."""
    next_index = 0

    async def worker(w: int) -> None:
        nonlocal next_index
        while next_index < ops:
            i = next_index
            next_index += 1
            await op(w, i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return ops / (time.perf_counter() - started)


async def median_rate(args: Args, prepare: Callable[[], Awaitable[None]] | None, op: Op) -> float:
    # One short untimed round first, so connection pools and caches are warm for all rounds.
    if prepare is not None:
        await prepare()
    await run_ops(op, min(args.ops, args.concurrency * 10), args.concurrency)
    rates = []
    for _ in range(args.repeat):
        if prepare is not None:
            await prepare()
        rates.append(await run_ops(op, args.ops, args.concurrency))
    return statistics.median(rates)


async def bench_store(store: Store, args: Args, run: str) -> dict[str, float]:
    value = os.urandom(args.value_size)
    read_keys = [keys.connection(f"conn_{run}_r{i}") for i in range(args.concurrency)]
    for key in read_keys:
        await store.put(key, value)
    # Each task CASes its own record, so every put is a winning CAS (no retries measured).
    own_keys = [keys.connection(f"conn_{run}_w{i}") for i in range(args.concurrency)]
    versions = [await store.put(key, value) for key in own_keys]
    state_keys: list[str] = []
    round_no = 0

    async def get(w: int, i: int) -> object:
        return await store.get(read_keys[i % len(read_keys)])

    async def cas_put(w: int, i: int) -> object:
        versions[w] = await store.put(own_keys[w], value, expect_version=versions[w])
        return None

    async def fill_states() -> None:
        nonlocal round_no, state_keys
        round_no += 1
        state_keys = [keys.oauth_state(f"{run}_{round_no}_{i}") for i in range(args.ops)]
        for start in range(0, args.ops, 500):
            chunk = state_keys[start : start + 500]
            await asyncio.gather(*(store.put_ttl(k, value, 600) for k in chunk))

    async def take(w: int, i: int) -> object:
        taken = await store.take(state_keys[i])
        assert taken is not None
        return taken

    return {
        "get": await median_rate(args, None, get),
        "CAS put": await median_rate(args, None, cas_put),
        "take": await median_rate(args, fill_states, take),
    }


async def bench_raw(client: Redis, args: Args, namespace: str) -> dict[str, float]:
    value = os.urandom(args.value_size)
    read_keys = [f"{namespace}:raw:r{i}" for i in range(args.concurrency)]
    for key in read_keys:
        await client.set(key, value)
    state_keys: list[str] = []
    round_no = 0

    async def get(w: int, i: int) -> object:
        return await client.get(read_keys[i % len(read_keys)])

    async def set_(w: int, i: int) -> object:
        return await client.set(f"{namespace}:raw:w{w}", value)

    async def fill_states() -> None:
        nonlocal round_no, state_keys
        round_no += 1
        state_keys = [f"{namespace}:raw:s{round_no}_{i}" for i in range(args.ops)]
        pipe = client.pipeline(transaction=False)
        for key in state_keys:
            pipe.set(key, value, ex=600)
        await pipe.execute()

    async def getdel(w: int, i: int) -> object:
        return await client.getdel(state_keys[i])

    return {
        "get": await median_rate(args, None, get),
        "CAS put": await median_rate(args, None, set_),
        "take": await median_rate(args, fill_states, getdel),
    }


async def bench_sqlite(args: Args, synchronous: Literal["FULL", "NORMAL"]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        store = await SqliteStore.open(os.path.join(directory, "bench.db"), synchronous=synchronous)
        try:
            return await bench_store(store, args, uuid.uuid4().hex[:8])
        finally:
            await store.close()


async def delete_namespace(client: Redis, namespace: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    async for name in client.scan_iter(match=f"{namespace}:*", count=1000):
        batch.append(name)
        if len(batch) == 1000:
            deleted += await client.delete(*batch)
            batch = []
    if batch:
        deleted += await client.delete(*batch)
    return deleted


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def main(args: Args) -> None:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    raw = Redis.from_url(args.redis_url, max_connections=args.concurrency)
    broker_redis = await RedisStore.open(
        args.redis_url, namespace=namespace, max_connections=args.concurrency
    )
    try:
        redis_version = (await raw.info("server"))["redis_version"]
        results = {
            "sqlite FULL": await bench_sqlite(args, "FULL"),
            "sqlite NORMAL": await bench_sqlite(args, "NORMAL"),
            "broker redis": await bench_store(broker_redis, args, uuid.uuid4().hex[:8]),
            "raw redis-py": await bench_raw(raw, args, namespace),
        }
    finally:
        await broker_redis.close()
        await delete_namespace(raw, namespace)
        await raw.aclose()

    print(
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, "
        f"Redis {redis_version} on {args.redis_url}"
    )
    print(
        f"ops/s, {args.ops} ops per figure, {args.concurrency} concurrent tasks, "
        f"{args.value_size}-byte values, median of {args.repeat}\n"
    )
    raw_names = {"get": "GET", "CAS put": "SET", "take": "GETDEL"}
    print(
        "| operation | sqlite (synchronous=FULL) | sqlite (synchronous=NORMAL) | broker redis "
        "| raw redis-py | broker redis / raw |"
    )
    print("|---|--:|--:|--:|--:|--:|")
    for op, raw_name in raw_names.items():
        broker, plain = results["broker redis"][op], results["raw redis-py"][op]
        print(
            f"| {op} | {results['sqlite FULL'][op]:,.0f} | {results['sqlite NORMAL'][op]:,.0f} "
            f"| {broker:,.0f} | {plain:,.0f} ({raw_name}) | {broker / plain:.2f} |"
        )


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ns = parser.parse_args()
    return Args(ns.ops, ns.concurrency, ns.repeat, ns.value_size, ns.redis_url)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
