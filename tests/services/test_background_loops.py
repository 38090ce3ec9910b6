"""Every background loop outlives whatever one poll or one item raises: it logs the exception
(its class, never its text, which may carry provider content), counts it in
`broker_background_errors_total{loop}`, and goes on. Cancellation still ends it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.crypto import Keyring
from broker.errors import StoreUnavailable
from broker.services.audit import AuditLog
from broker.services.context import Context
from broker.services.events import EventWorker
from broker.services.polling import poll_forever
from broker.services.refresh import Refresher
from broker.store import keys
from broker.store.redis import RedisStore
from broker.store.sealed import SealedStore
from broker.store.sqlite import SqliteStore
from broker.web.app import create_app
from broker.web.state import CONTEXT
from tests.helpers import background_errors

CANARY = "CANARY_provider_said_7f3a9c2e5b1d"
REDIS_URL = "redis://127.0.0.1:6379/0"
JUNK = "x}:"
"""The start of a due-index key the broker never writes (the store is untrusted)."""


async def outlives(loop: asyncio.Task[Any], reached: Awaitable[Any]) -> None:
    """Wait for `reached` or for the loop to end, whichever comes first; the loop must not."""
    waiting = asyncio.ensure_future(reached)
    await asyncio.wait({loop, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if loop.done():
        waiting.cancel()
        raise AssertionError(f"the loop ended: {loop.exception()!r}")


async def stop(loop: asyncio.Task[Any]) -> None:
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert loop.cancelled()


@pytest.fixture
async def ctx(make_settings: Callable[..., Settings]) -> AsyncIterator[Context]:
    """A broker's services with its own background workers off: the tests drive them."""
    app = create_app(make_settings(refresher=False, events_worker=False))
    async with TestClient(TestServer(app)) as client:
        yield client.app[CONTEXT]


async def test_a_poll_that_raises_does_not_end_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    failures: list[BaseException] = [
        RuntimeError(CANARY),
        RecursionError(CANARY),
        StoreUnavailable(f"the store is down ({CANARY})"),
    ]
    polled = asyncio.Event()

    async def run_once() -> int:
        if failures:
            raise failures.pop(0)
        polled.set()
        return 0

    before = background_errors("refresher")
    loop = asyncio.create_task(poll_forever("refresher", run_once, batch=10, interval=0.01))
    await outlives(loop, polled.wait())
    assert background_errors("refresher") == before + 3
    assert "RuntimeError" in caplog.text and "RecursionError" in caplog.text
    assert "store_unavailable" in caplog.text
    assert CANARY not in caplog.text
    await stop(loop)


async def test_cancelling_a_poll_in_progress_ends_the_loop() -> None:
    started = asyncio.Event()

    async def run_once() -> int:
        started.set()
        await asyncio.sleep(3600)
        return 0

    loop = asyncio.create_task(poll_forever("event-worker", run_once, batch=10, interval=0.01))
    await started.wait()
    await stop(loop)


class PoisonedRefresher(Refresher):
    """Refreshes nothing: records the connections it was given, raising on the poisoned one."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.done: list[str] = []

    async def handle(self, connection_id: str) -> None:
        if connection_id == "conn_poisoned":
            raise RecursionError(CANARY)
        self.done.append(connection_id)


class PoisonedEventWorker(EventWorker):
    """Pushes nothing: records the streams it was given, raising on the poisoned one."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.done: list[str] = []

    @property
    def pushing(self) -> bool:
        return True

    async def deliver(self, stream: str) -> None:
        if stream == "conn_poisoned":
            raise RecursionError(CANARY)
        self.done.append(stream)


@pytest.mark.parametrize(
    ("worker_class", "due_key", "junk", "loop", "handled"),
    [
        # the refresher counts what it took from the index, the event worker its jobs
        (PoisonedRefresher, keys.connection, "record", "refresher", 3),
        (PoisonedEventWorker, keys.event_queue, "outbox:evt_1", "event-worker", 2),
    ],
)
async def test_an_item_that_raises_does_not_stop_the_others(
    ctx: Context,
    caplog: pytest.LogCaptureFixture,
    worker_class: type[PoisonedRefresher | PoisonedEventWorker],
    due_key: Callable[[str], str],
    junk: str,
    loop: str,
    handled: int,
) -> None:
    caplog.set_level(logging.INFO)
    now = time.time()
    for record_id in ("conn_poisoned", "conn_fine"):
        await ctx.store.schedule(due_key(record_id), now - 1)
    await ctx.store.schedule(JUNK + junk, now - 1)
    worker = worker_class(ctx)
    before = background_errors(loop)
    assert await worker.run_once() == handled
    assert worker.done == ["conn_fine"]
    assert background_errors(loop) == before + 2  # the poisoned item and the junk key
    assert "RecursionError" in caplog.text and "ValueError" in caplog.text
    assert CANARY not in caplog.text


class FailingOnce(SealedStore):
    """Refuses the first audit batch of one tenant with an unexpected error."""

    tenant = "t-poisoned"

    async def put_ttl(self, key: str, value: bytes, ttl: float) -> int:
        if key.startswith(f"{{audit_{self.tenant}}}") and self.tenant:
            self.tenant = ""
            raise ValueError(CANARY)
        return await super().put_ttl(key, value, ttl)


@pytest.fixture
async def audit_store(tmp_path: Any) -> AsyncIterator[FailingOnce]:
    inner = await SqliteStore.open(str(tmp_path / "audit.db"))
    keyring = Keyring.generate("k1")
    yield FailingOnce(inner, lambda: keyring)
    await inner.close()


async def test_a_tenant_whose_audit_batch_fails_does_not_lose_the_others(
    audit_store: FailingOnce, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    log = AuditLog(audit_store, time.time, 3600)
    for tenant in ("t-poisoned", "t-fine"):
        log.record(actor="admin", action="connection.create", tenant_id=tenant)
    before = background_errors("audit-flush")
    await log.flush()
    assert background_errors("audit-flush") == before + 1
    assert "ValueError" in caplog.text and CANARY not in caplog.text
    assert [e["tenant_id"] for e in (await log.query("t-fine"))[0]] == ["t-fine"]
    # the failed batch stayed in the buffer and went out with the next flush
    assert [e["tenant_id"] for e in (await log.query("t-poisoned"))[0]] == ["t-poisoned"]


async def test_a_flush_that_raises_does_not_end_the_audit_flusher(
    audit_store: FailingOnce, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("broker.services.audit.FLUSH_INTERVAL", 0.01)
    log = AuditLog(audit_store, time.time, 3600)
    failures = [RuntimeError(CANARY), MemoryError()]
    flushed = asyncio.Event()

    async def flush() -> None:
        if failures:
            raise failures.pop(0)
        flushed.set()

    monkeypatch.setattr(log, "flush", flush)
    before = background_errors("audit-flush")
    loop = asyncio.create_task(log.run())
    await outlives(loop, flushed.wait())
    assert background_errors("audit-flush") == before + 2
    await stop(loop)


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisStore]:
    namespace = f"loops-test-{uuid.uuid4().hex[:8]}"
    store = await RedisStore.open(REDIS_URL, namespace=namespace)
    yield store
    for key in ("{conn_a}:record", "{conn_b}:record"):
        await store.delete(key)
    await store.close()


async def test_a_change_handler_that_raises_does_not_end_the_change_feed(
    redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    seen: list[str | None] = []
    subscribed = asyncio.Event()
    second = asyncio.Event()

    def on_change(key: str | None) -> None:
        seen.append(key)
        if key is None:
            subscribed.set()
        elif key == "{conn_a}:record":
            raise RuntimeError(CANARY)
        elif key == "{conn_b}:record":
            second.set()

    before = background_errors("changes")
    loop = asyncio.create_task(redis_store.watch_changes(on_change))
    await outlives(loop, subscribed.wait())
    await redis_store.put("{conn_a}:record", b"1", None)

    async def write_until_heard() -> None:
        # writes published before the feed has subscribed again are lost, by design
        while not second.is_set():
            await redis_store.put("{conn_b}:record", b"2", None)
            await asyncio.sleep(0.05)

    await outlives(loop, write_until_heard())
    assert background_errors("changes") == before + 1
    assert "RuntimeError" in caplog.text and CANARY not in caplog.text
    await stop(loop)
