"""Finishing an interrupted refresh: what the next holder of a connection's refresh lock does
first with a journal left behind (`journal`), before it serves or refreshes anything.

| journal holds                | record still holds the spent token | outcome                     |
|------------------------------|------------------------------------|-----------------------------|
| an answer                    | yes                                | the answer is applied       |
| an answer                    | it holds the answer already        | cleared                     |
| anything                     | neither (a reconnect)              | cleared, the record wins    |
| an intent, rotating provider | yes, inside the reuse window       | refreshed again at once     |
| an intent, rotating provider | yes, no window or past it          | `needs_reauth`/refresh_lost |
| an intent, no rotation       | yes                                | cleared, refreshed as usual |

A rotating provider is one whose manifest says `rotatesRefreshTokens`, or whose earlier
refreshes of this grant answered a new refresh token (`RefreshState.rotation_seen`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import broker.services.refresh.journal as journal
from broker.errors import NeedsReauth, VersionConflict
from broker.manifest import OAuthConfig
from broker.services.context import Context
from broker.services.records import Connection, RefreshJournal, load_connection
from broker.services.refresh.journal import Verdict
from broker.services.refresh.lock import HeldLock
from broker.services.refresh.outcome import needs_reauth, schedule_next, write_token

log = logging.getLogger("broker.refresh")

ATTEMPTS = 5
"""Rounds of read-decide-write: each lost one means the record or journal changed under us
(a reconnect, a settings write), which is rare; running out is a `VersionConflict`."""


@dataclass(frozen=True)
class Recovered:
    conn: Connection
    """The record once recovery is done."""
    version: int
    """The journal's version now (0: none), for the next intent to write over."""
    retry_from: float | None = None
    """Set when the spent token must be sent again now, inside the provider's reuse window
    that opened then."""


async def recover(ctx: Context, held: HeldLock, conn: Connection, config: OAuthConfig) -> Recovered:
    """Apply, retry or give up what the journal of `conn` holds (module docstring). Raises
    `NeedsReauth` when the answer is lost for good."""
    for _ in range(ATTEMPTS):
        found = await journal.read(ctx, conn.id)
        if found is None:
            return Recovered(conn, 0)
        entry, version = found
        decided = journal.verdict(
            entry,
            conn,
            rotates=config.rotates_refresh_tokens,
            reuse_seconds=config.refresh_token_reuse_seconds or 0,
            now=ctx.clock(),
        )
        log.info("refresh journal of %s: %s", conn.id, decided.value)
        if decided in (Verdict.APPLIED, Verdict.STALE, Verdict.UNSPENT):
            if await journal.clear(ctx, conn.id, version):
                return Recovered(conn, 0)
            continue
        if decided is Verdict.RETRY:
            return Recovered(conn, version, retry_from=entry.spent_at)
        if decided is Verdict.APPLY:
            assert entry.answer is not None
            conn, written = await write_token(ctx, held, conn, entry.answer, None)
            if written:
                await schedule_next(ctx, conn)
            continue  # next round: APPLIED, cleared; or the record moved on meanwhile
        try:
            conn = await _give_up(ctx, held, conn, entry, version)
        except VersionConflict:
            continue  # a late answer landed in the journal after all: decide again
    raise VersionConflict(f"the refresh journal of {conn.id} kept changing; retry")


async def _give_up(
    ctx: Context, held: HeldLock, conn: Connection, entry: RefreshJournal, version: int
) -> Connection:
    """The answer is lost and the token spent: `needs_reauth`, reason `refresh_lost` (raised).
    Returns the record only when a reconnect replaced the token meanwhile."""
    if not entry.lost:
        version = await journal.mark_lost(ctx, held, conn.id, entry, version)
    message = (
        f"a refresh of {conn.id} was interrupted after the provider replaced the refresh "
        "token, and its answer is lost: the tenant must reconnect"
    )
    try:
        await needs_reauth(ctx, conn, "refresh_lost", message)
    except NeedsReauth:
        await journal.clear(ctx, conn.id, version)
        raise
    conn, _ = await load_connection(ctx.store, conn.id)
    return conn
