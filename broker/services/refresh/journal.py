"""The refresh journal (`{conn_...}:refresh-journal`): what a refresh did with the refresh
token, so that a broker dying mid-refresh (a crash, an OOM kill, a deploy, a store outage)
never leaves a connection holding a token its provider has already replaced.

One refresh, under the connection's refresh lock:
1. `begin`, before the provider call: the intent (lock owner, SHA-256 of the refresh token
   about to be spent, when), fenced by the lock. The connection's due-index entry moves to
   when the lock runs out, so the proactive refresher finds an interrupted refresh even if
   no caller ever asks for the token again.
2. `record_answer`, the moment the provider answered: its tokens, in one write, before
   anything else; retried while the store is out (the lock may run out meanwhile: the write
   then lands only while the journal still holds this very intent).
3. the token is applied to the record (`outcome.write_token`), then `clear`.

The journal shares the record's hash tag, so on a Redis Cluster it sits on the record's
shard and the lock fences it like the record. It is sealed like every record: it holds
tokens. Whoever next holds the lock reads it first and `verdict` says what to do with it
(`recovery`). A version-checked `clear` can meet a journal deleted and written again at the
same version in between (the store restarts versions at 1): that needs a holder whose lock
ran out, a successor's whole refresh inside one read-then-write of `record_answer`, and is
not guarded against further.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from dataclasses import dataclass

from broker import metrics
from broker.errors import LockLost, StoreUnavailable, VersionConflict
from broker.services import records
from broker.services.context import Context
from broker.services.provider_send import MAX_SECONDS
from broker.services.records import Connection, RefreshJournal, StoredToken
from broker.services.refresh.lock import HeldLock
from broker.store import keys

log = logging.getLogger("broker.refresh")

ANSWER_PATIENCE = 30.0
"""Seconds a provider's answer is held in memory while the store is out: the only copy of a
rotated refresh token, worth far more than a caller's wait."""
REUSE_MARGIN = MAX_SECONDS
"""A retry inside a reuse window must reach the provider before it closes."""


class Verdict(enum.Enum):
    """What a refresh that finds a journal does with it (`verdict`)."""

    APPLIED = "applied"  # the answer is in the record already: clear the journal
    APPLY = "apply"  # an answer never applied: apply it, then clear
    STALE = "stale"  # the record moved on (a reconnect): clear
    UNSPENT = "unspent"  # no answer, the provider does not rotate: the token works, clear
    RETRY = "retry"  # no answer, inside the provider's reuse window: spend the token again now
    LOST = "lost"  # no answer, the token is spent for good: needs_reauth, refresh_lost


def spent_hash(refresh_token: str | None) -> str:
    return hashlib.sha256((refresh_token or "").encode()).hexdigest()


def verdict(
    entry: RefreshJournal, conn: Connection, *, rotates: bool, reuse_seconds: int, now: float
) -> Verdict:
    """Pure: the journal against the record, the provider's documented behaviour (`rotates`:
    its manifest says so; a grant seen rotating counts too) and the clock."""
    rotates = rotates or conn.refresh.rotation_seen
    held = conn.token.refresh_token if conn.token else None
    if entry.answer is not None:
        if conn.token == entry.answer:
            return Verdict.APPLIED
        return Verdict.APPLY if spent_hash(held) == entry.spent else Verdict.STALE
    if spent_hash(held) != entry.spent:
        return Verdict.STALE
    if entry.lost:
        return Verdict.LOST
    if not rotates:
        return Verdict.UNSPENT
    if now + REUSE_MARGIN < entry.spent_at + reuse_seconds:
        return Verdict.RETRY
    return Verdict.LOST


@dataclass(frozen=True)
class Intent:
    """A journal entry as this refresh wrote it, and the version that write got."""

    entry: RefreshJournal
    version: int


async def read(ctx: Context, connection_id: str) -> tuple[RefreshJournal, int] | None:
    return await records.load(ctx.store, keys.refresh_journal(connection_id), RefreshJournal)


async def begin(
    ctx: Context,
    held: HeldLock,
    connection_id: str,
    spent: str,
    *,
    version: int,
    spent_at: float | None,
) -> Intent:
    """Write the intent over the journal at `version` (0: none), fenced by the lock
    (`LockLost`: nothing written, nothing spent). `spent_at` carries the first spend of the
    same token into a retry."""
    now = ctx.clock()
    entry = RefreshJournal(
        owner=held.fence.owner,
        spent=spent_hash(spent),
        spent_at=now if spent_at is None else spent_at,
        started_at=now,
    )
    key = keys.refresh_journal(connection_id)
    written = await records.save(ctx.store, key, entry, version, held.fence)
    await ctx.store.schedule(keys.connection(connection_id), now + held.ttl)
    return Intent(entry, written)


async def record_answer(
    ctx: Context, held: HeldLock, connection_id: str, intent: Intent, answer: StoredToken
) -> Intent | None:
    """The provider's answer into the journal, before anything else. None when another
    holder has taken over the journal (this lock ran out): its recovery decided, and this
    answer must not be applied. With the store out, `StoreUnavailable` at once, so the
    caller gets its 503 without waiting on the outage, while a background task keeps
    trying to write the answer for `ANSWER_PATIENCE`: once written, whoever takes the lock
    next applies it (`recovery`)."""
    entry = intent.entry.model_copy(update={"answer": answer})
    try:
        return await _write_answer(ctx, held, connection_id, intent, entry)
    except StoreUnavailable:
        ctx.background.start(
            _keep_writing(ctx, held, connection_id, intent, entry), name="refresh-answer"
        )
        raise


async def _keep_writing(
    ctx: Context, held: HeldLock, connection_id: str, intent: Intent, entry: RefreshJournal
) -> None:
    deadline = time.monotonic() + ANSWER_PATIENCE
    delay = 0.05
    while True:
        log.warning("the answer of a refresh of %s waits for the store", connection_id)
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 2)
        try:
            await _write_answer(ctx, held, connection_id, intent, entry)
            return
        except StoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                metrics.background_error(log, "refresher", exc, item=connection_id)
                return  # the journal keeps the intent: recovery decides (`verdict`)
        except Exception as exc:  # a background task: log and count, never raise into the void
            metrics.background_error(log, "refresher", exc, item=connection_id)
            return


async def _write_answer(
    ctx: Context, held: HeldLock, connection_id: str, intent: Intent, entry: RefreshJournal
) -> Intent | None:
    key = keys.refresh_journal(connection_id)
    try:
        try:
            written = await records.save(ctx.store, key, entry, intent.version, held.fence)
        except LockLost:
            if not await _still_ours(ctx, connection_id, intent):
                return None
            written = await records.save(ctx.store, key, entry, intent.version)
        return Intent(entry, written)
    except VersionConflict:
        return None


async def _still_ours(ctx: Context, connection_id: str, intent: Intent) -> bool:
    found = await read(ctx, connection_id)
    return found is not None and found[1] == intent.version and found[0] == intent.entry


async def mark_lost(
    ctx: Context, held: HeldLock, connection_id: str, entry: RefreshJournal, version: int
) -> int:
    """Settle that the answer is lost before acting on it: a holder whose lock ran out can
    no longer write its answer in, and a crash before `needs_reauth` is written still ends
    in it."""
    lost = entry.model_copy(update={"lost": True})
    key = keys.refresh_journal(connection_id)
    return await records.save(ctx.store, key, lost, version, held.fence)


async def clear(ctx: Context, connection_id: str, version: int) -> bool:
    """Delete the journal as written at `version`; False when it could not. Best effort: what
    it guards is done, and a leftover is recognised as such (`Verdict.APPLIED`, `STALE`) by
    the next holder."""
    try:
        await ctx.store.delete(keys.refresh_journal(connection_id), expect_version=version)
    except (VersionConflict, StoreUnavailable) as exc:
        log.warning("the refresh journal of %s was left behind (%s)", connection_id, exc.code)
        return False
    return True
