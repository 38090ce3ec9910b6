"""A broker process on Redis under a steady runtime load while Redis is stopped for 10 s, then
frozen (SIGSTOP) for 6 s. While Redis is away every request gets a 503 JSON within 2 s (frozen:
within the store's 2 s deadline), none hangs, the background loops run on, and the broker
recovers by itself with no restart; afterwards every record reads back as it was, through
the admin API and the runtime reads, after Redis restarted from its append-only file."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import free_port
from tests.e2e.outage import (
    BOUND,
    Broker,
    aof_redis,
    is_unavailable,
    peer_config,
    running_broker,
)
from tests.peers.oidc import OidcPeer, oidc_peer_fixture
from tests.store.redis_servers import RedisServer

BROKER_PORT = free_port()
OUTAGE = 10.0
FROZEN = 6.0
FROZEN_BOUND = 3.0
"""A frozen Redis answers nothing, so a request waits out one store deadline (2 s) and
then gets its 503: never two deadlines, never a hang."""
CACHE_TTL = 1.0  # the record cache may answer a read this long after Redis went away
RECOVERY = 3.0
"""Seconds after Redis is back from which every request must succeed again."""
SECRETS = ("api_key", "webhook_secret")

oidc = oidc_peer_fixture(lambda: peer_config(f"http://127.0.0.1:{BROKER_PORT}"), scope="module")


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with aof_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def broker(tmp_path: Path, redis: RedisServer, oidc: OidcPeer) -> AsyncIterator[Broker]:
    async with running_broker(BROKER_PORT, tmp_path, redis, oidc, oidc.token_endpoint) as b:
        yield b


@dataclass(frozen=True)
class Answer:
    """One request of the load: which of the reads, when, how long it took, the answer."""

    read: int
    started: float
    took: float
    status: int
    body: Any


class Load:
    """A fixed set of runtimes, each reading in a loop (one request at a time, a short pause
    between), round-robin over `reads` (path, runtime token), until `stop` is set."""

    WORKERS = 6

    def __init__(self, broker: Broker, reads: list[tuple[str, str]]) -> None:
        self.broker = broker
        self.reads = reads
        self.answers: list[Answer] = []
        self.stop = asyncio.Event()

    async def worker(self, first: int) -> None:
        n = first
        while not self.stop.is_set():
            read = n % len(self.reads)
            path, token = self.reads[read]
            started = time.monotonic()
            status, body = await self.broker.call("GET", path, token)
            self.answers.append(Answer(read, started, time.monotonic() - started, status, body))
            n += self.WORKERS
            await asyncio.sleep(0.01)

    async def run(self) -> None:
        await asyncio.gather(*(self.worker(i) for i in range(self.WORKERS)))


async def snapshot(
    broker: Broker, connections: list[str], reads: list[tuple[str, str]]
) -> dict[str, Any]:
    """Every connection through the admin API (one by one and per tenant), every runtime read."""
    seen: dict[str, Any] = {}
    for connection_id in connections:
        seen[connection_id] = await broker.call("GET", f"/v1/connections/{connection_id}")
    for tenant in ("tenant-a", "tenant-b", "tenant-c"):
        seen[tenant] = await broker.call("GET", f"/v1/connections?tenant_id={tenant}")
    for path, token in reads:
        seen[f"{path} {token[-8:]}"] = await broker.call("GET", path, token)
    return seen


def unavailable_while_away(answers: list[Answer], away: float, back: float, bound: float) -> None:
    """Requests made while Redis was away (`away` to `back`, once the record cache's last
    entries had lapsed, and early enough to be answered before it was back): each one a
    503 JSON within `bound`, and there were plenty of them."""
    assert max(a.took for a in answers if away <= a.started <= back) < bound
    during = [a for a in answers if away + CACHE_TTL < a.started < back - BOUND]
    assert len(during) >= Load.WORKERS, len(during)
    assert all(is_unavailable(a.status, a.body) for a in during), during[:3]


async def background_errors(broker: Broker) -> float:
    """broker_background_errors_total over every loop, as Prometheus scrapes it."""
    _, text = await broker.call("GET", "/metrics")
    counts = re.findall(r"^broker_background_errors_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return sum(float(count) for count in counts)


def recovered(answers: list[Answer], up: float, until: float) -> None:
    """From RECOVERY seconds after Redis is back, every request succeeds (and there were
    plenty): the broker reconnected by itself."""
    after = [a for a in answers if up + RECOVERY < a.started and a.started < until]
    assert len(after) > 50 and all(a.status == 200 for a in after), [
        a for a in after if a.status != 200
    ][:3]


async def test_redis_stopped_then_frozen_under_load(broker: Broker, redis: RedisServer) -> None:
    connections, reads = [], []
    for n in range(6):
        connection_id, token = await broker.connect_api_key(f"tenant-{'bc'[n % 2]}", n)
        connections.append(connection_id)
        reads += [(f"/v1/runtime/secrets/{name}", token) for name in SECRETS]
    for _ in range(2):
        connection_id, token = await broker.connect_oauth()
        connections.append(connection_id)
        reads.append(("/v1/runtime/oauth/access-token", token))
    before = await snapshot(broker, connections, reads)
    assert all(status == 200 for status, _ in before.values()), before
    expected = [before[f"{path} {token[-8:]}"][1] for path, token in reads]

    load = Load(broker, reads)
    running = asyncio.ensure_future(load.run())
    await asyncio.sleep(1.0)
    # stopped: SHUTDOWN writes the AOF, the port refuses connections for 10 s
    quiet = await background_errors(broker)
    down = time.monotonic()
    await asyncio.to_thread(redis.stop)
    await asyncio.sleep(OUTAGE / 2)
    assert await broker.call("GET", "/healthz") == (200, {"status": "ok"})
    status, body = await broker.call("GET", "/readyz")
    assert status == 503 and body["error"] == "store_unavailable", body
    await asyncio.sleep(OUTAGE / 2)
    # the background loops (refresher, events, audit, change feed) ran on, counting
    assert await background_errors(broker) > quiet
    restarting = time.monotonic()
    await asyncio.to_thread(redis.start)  # from its append-only file
    up = time.monotonic()
    await asyncio.sleep(RECOVERY)
    settled = await background_errors(broker)
    await asyncio.sleep(1.0)
    assert await background_errors(broker) == settled  # and stopped failing
    # frozen (SIGSTOP: a partition, or a disk that stalls an fsync): connections are
    # accepted and nothing answers, so each call runs into the store's deadline
    frozen = time.monotonic()
    redis.signal(signal.SIGSTOP)
    await asyncio.sleep(FROZEN)
    thawed = time.monotonic()
    redis.signal(signal.SIGCONT)
    await asyncio.sleep(RECOVERY + 1.0)
    load.stop.set()
    await running

    process = broker.process.proc
    assert process is not None and process.poll() is None  # never restarted
    assert (await broker.call("GET", "/readyz"))[0] == 200
    assert await snapshot(broker, connections, reads) == before

    answers = load.answers
    # every answer is the value as it was, or a 503 JSON: never another read's value (a
    # reply left on a connection by a cancelled call), never an error of another kind
    wrong = [
        a
        for a in answers
        if not (a.status == 200 and a.body == expected[a.read])
        and not is_unavailable(a.status, a.body)
    ]
    assert wrong == [], wrong[:5]
    unavailable_while_away(answers, down, restarting, BOUND)
    recovered(answers, up, frozen)
    unavailable_while_away(answers, frozen, thawed, FROZEN_BOUND)
    recovered(answers, thawed, time.monotonic())
    slowest = max(answers, key=lambda a: a.took)
    assert slowest.took < FROZEN_BOUND, slowest
