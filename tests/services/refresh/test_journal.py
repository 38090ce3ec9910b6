"""The refresh journal: what the next lock holder does with what an interrupted refresh left
(`journal.verdict`, on records and a clock alone), how a late answer lands or is refused
against the real store, and the idle keep-alive a manifest's inactivity expiry sets. The
kill-point tests (tests/e2e/test_refresh_crashes.py) run the whole of it in real processes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broker.config import Settings
from broker.services.context import Context
from broker.services.records import Connection, RefreshJournal, RefreshState, StoredToken
from broker.services.refresh import journal
from broker.services.refresh.journal import REUSE_MARGIN, Verdict, spent_hash, verdict
from broker.services.refresh.lock import HeldLock
from broker.services.refresh.outcome import idle_interval
from broker.services.refresh.policy import keepalive_interval
from broker.store import keys
from broker.store.base import Fence
from broker.web.app import create_app
from broker.web.state import CONTEXT

NOW = 1_800_000_000.0
CID = "conn_" + "b" * 26
SPENT = "rt-canary-spent-51c0"
ANSWER = StoredToken(
    access_token="at-canary-new-8e2f", refresh_token="rt-canary-new-8e2f", obtained_at=NOW
)


def record(refresh_token: str | None = SPENT, **fields: Any) -> Connection:
    token = StoredToken(access_token="at-old", refresh_token=refresh_token, obtained_at=NOW - 60)
    return Connection(
        id=CID,
        tenant_id="t1",
        connector="xero",
        token=token,
        created_at=NOW - 3600,
        updated_at=NOW - 60,
        **fields,
    )


def entry(spent_ago: float = 5.0, **fields: Any) -> RefreshJournal:
    return RefreshJournal(
        owner="o1", spent=spent_hash(SPENT), spent_at=NOW - spent_ago, started_at=NOW, **fields
    )


@pytest.mark.parametrize(
    ("found", "conn", "rotates", "reuse", "expected"),
    [
        (entry(answer=ANSWER), record(), True, 0, Verdict.APPLY),
        (
            entry(answer=ANSWER),
            record().model_copy(update={"token": ANSWER}),
            True,
            0,
            Verdict.APPLIED,
        ),
        (entry(answer=ANSWER), record("rt-of-a-reconnect"), True, 0, Verdict.STALE),
        (entry(), record("rt-of-a-reconnect"), True, 600, Verdict.STALE),
        (entry(), record(), False, 0, Verdict.UNSPENT),
        (entry(), record(refresh=RefreshState(rotation_seen=True)), False, 0, Verdict.LOST),
        (entry(spent_ago=5), record(), True, 600, Verdict.RETRY),
        (entry(spent_ago=600 - REUSE_MARGIN + 1), record(), True, 600, Verdict.LOST),
        (entry(), record(), True, 0, Verdict.LOST),
        (entry(lost=True), record(), True, 600, Verdict.LOST),
    ],
    ids=[
        "answer-not-applied",
        "answer-applied",
        "answer-after-reconnect",
        "intent-after-reconnect",
        "intent-not-rotating",
        "intent-seen-rotating",
        "intent-inside-window",
        "intent-window-closing",
        "intent-no-window",
        "decided-lost",
    ],
)
def test_the_verdict_on_what_a_refresh_left(
    found: RefreshJournal, conn: Connection, rotates: bool, reuse: int, expected: Verdict
) -> None:
    assert verdict(found, conn, rotates=rotates, reuse_seconds=reuse, now=NOW) is expected


def test_the_keepalive_follows_a_documented_inactivity_expiry() -> None:
    assert keepalive_interval(604_800, 5_184_000) == 2_592_000  # Xero: 60 days -> every 30
    assert keepalive_interval(604_800, None) == 604_800
    assert keepalive_interval(604_800, 0) == 604_800


@pytest.fixture
async def ctx(make_settings: Callable[..., Settings]) -> AsyncIterator[Context]:
    app = create_app(make_settings(refresher=False, events_worker=False))
    async with TestClient(TestServer(app)) as client:
        yield client.app[CONTEXT]


def test_bundled_manifests_set_the_keepalive(ctx: Context) -> None:
    assert idle_interval(ctx, record()) == 5_184_000 / 2  # xero declares 60 days
    stripe = record().model_copy(update={"connector": "stripe"})
    assert idle_interval(ctx, stripe) == ctx.settings.idle_refresh_interval


async def take(ctx: Context, ttl: float = 15.0) -> HeldLock:
    lock = keys.refresh_lock(CID)
    owner = await ctx.store.acquire(lock, ttl)
    assert owner is not None
    return HeldLock(Fence(lock, owner), ttl, time.monotonic() + ttl)


async def test_the_journal_is_sealed(ctx: Context) -> None:
    held = await take(ctx)
    intent = await journal.begin(ctx, held, CID, SPENT, version=0, spent_at=None)
    assert await journal.record_answer(ctx, held, CID, intent, ANSWER) is not None
    raw = await ctx.store.inner.get(keys.refresh_journal(CID))
    assert raw is not None
    for secret in (SPENT, ANSWER.access_token, ANSWER.refresh_token or ""):
        assert secret.encode() not in raw[0]
    found = await journal.read(ctx, CID)
    assert found is not None and found[0].answer == ANSWER


async def test_a_late_answer_lands_while_the_journal_is_still_its_own(ctx: Context) -> None:
    """The lock ran out during the provider call (a slow or restarted store) and someone
    else holds it, but has not touched the journal yet: the answer is kept, for it to apply."""
    held = await take(ctx)
    intent = await journal.begin(ctx, held, CID, SPENT, version=0, spent_at=None)
    await ctx.store.release(held.fence.lock, held.fence.owner)
    await take(ctx)
    assert await journal.record_answer(ctx, held, CID, intent, ANSWER) is not None
    found = await journal.read(ctx, CID)
    assert found is not None and (found[0].owner, found[0].answer) == (held.fence.owner, ANSWER)


async def test_a_late_answer_is_refused_once_another_holder_took_the_journal(
    ctx: Context,
) -> None:
    """The successor found no answer and acted on it (here: spent the token again inside the
    window): the late answer must not land over its intent."""
    held = await take(ctx)
    intent = await journal.begin(ctx, held, CID, SPENT, version=0, spent_at=None)
    await ctx.store.release(held.fence.lock, held.fence.owner)
    successor = await take(ctx)
    await journal.begin(
        ctx, successor, CID, SPENT, version=intent.version, spent_at=intent.entry.spent_at
    )
    assert await journal.record_answer(ctx, held, CID, intent, ANSWER) is None
    found = await journal.read(ctx, CID)
    assert found is not None
    assert (found[0].owner, found[0].answer) == (successor.fence.owner, None)
    assert found[0].spent_at == intent.entry.spent_at  # the window runs from the first spend
