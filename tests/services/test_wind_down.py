"""A shutdown lets background work finish instead of dropping it: the loops end the turn
under way, and the refreshes and answer writes under way are awaited, within a bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.services.context import Context
from broker.services.polling import poll_forever
from broker.web.app import create_app
from broker.web.state import CONTEXT


@pytest.fixture
async def ctx(make_settings: Callable[..., Settings]) -> AsyncIterator[Context]:
    app = create_app(make_settings(refresher=False, events_worker=False))
    async with TestClient(TestServer(app)) as client:
        yield client.app[CONTEXT]


async def test_a_stopped_loop_ends_the_turn_under_way_first() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    turns: list[str] = []

    async def run_once() -> int:
        started.set()
        await release.wait()
        turns.append("done")
        return 0

    stop = asyncio.Event()
    loop = asyncio.create_task(
        poll_forever("refresher", run_once, batch=10, interval=0.01, stop=stop)
    )
    await started.wait()
    stop.set()
    await asyncio.sleep(0.05)
    assert not loop.done()  # the turn is not cut
    release.set()
    await asyncio.wait_for(loop, 5)
    assert turns == ["done"]


async def test_an_idle_loop_stops_at_once() -> None:
    stop = asyncio.Event()

    async def run_once() -> int:
        return 0

    loop = asyncio.create_task(
        poll_forever("event-worker", run_once, batch=10, interval=3600, stop=stop)
    )
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(loop, 5)


async def test_settle_awaits_background_work_and_refreshes(ctx: Context) -> None:
    written: list[str] = []

    async def write(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        written.append(name)

    async def refresh() -> None:
        await asyncio.sleep(0.1)
        written.append("refresh")
        ctx.background.start(write("started by the refresh", 0.1), name="answer")

    ctx.background.start(write("answer", 0.1), name="answer")
    ctx.refreshes.start("conn_1", refresh())  # type: ignore[arg-type]
    assert await ctx.settle(5) == 0
    assert sorted(written) == ["answer", "refresh", "started by the refresh"]
    assert len(ctx.background) == 0 and len(ctx.refreshes) == 0


async def test_settle_cuts_what_outlasts_its_bound(ctx: Context) -> None:
    task = ctx.background.start(asyncio.sleep(3600), name="stuck")
    assert await ctx.settle(0.1) == 1
    assert task.cancelled()
