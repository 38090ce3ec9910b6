"""Token refresh, single-flight per connection across every replica (DESIGN 5).

The one that takes the refresh lock re-reads the record (someone may have refreshed already),
calls the provider within what is left of the lock, writes with CAS fenced by the lock
(merging onto a newer record if an unrelated write won; `outcome`), and persists before
releasing the lock. Everyone else polls the record for the new version (they never
queue through the lock) and, if the lock holder dies, takes the lock over once it expires.
Providers that rotate refresh tokens revoke the whole grant when an old one is reused, so a
second refresh of the same token would be data loss: that is what this prevents.
"""

from __future__ import annotations

import asyncio
import random
import time

import broker.services.refresh.crash_points as crash_points
import broker.services.refresh.journal as journal
from broker import metrics, oauth
from broker.errors import BrokerError, LockLost, NeedsReauth, RefreshTimeout
from broker.manifest import Manifest
from broker.services import provider
from broker.services.context import Context
from broker.services.provider_metrics import TOKEN_ERRORS
from broker.services.records import Connection, StoredToken, load_connection
from broker.services.refresh.journal import Intent
from broker.services.refresh.lock import HeldLock, LockWait, holding
from broker.services.refresh.outcome import (
    dropped,
    idle_interval,
    needs_reauth,
    record_failure,
    schedule_next,
    write_token,
)
from broker.services.refresh.policy import (
    backing_off,
    check_usable,
    forced_recently,
    is_fresh,
    is_valid,
    old_or_fail,
    proactive_due,
    serves,
    within_retry_after,
)
from broker.services.refresh.recovery import Recovered, recover
from broker.store import keys

WAIT_DEADLINE = 10.0
POLL_INTERVAL = (0.02, 0.06)


async def ensure_fresh(
    ctx: Context,
    connection_id: str,
    *,
    min_ttl: float,
    force: bool = False,
    current: tuple[Connection, int] | None = None,
) -> StoredToken:
    """A token valid for more than `min_ttl` (capped, see `policy.effective_margin`), refreshing
    once across all replicas when needed; `force` after the provider refused the token.
    `current` is the record as the caller just read it (saves a read on the hot path)."""
    started = ctx.clock()
    conn, version = current or await load_connection(ctx.store, connection_id)
    check_usable(conn)
    if not force and is_fresh(conn.token, min_ttl, started):
        assert conn.token is not None
        return conn.token
    if not force and backing_off(conn, started) and is_valid(conn.token, started):
        assert conn.token is not None
        return conn.token
    if (waiting := within_retry_after(conn, started, force=force)) is not None:
        return waiting
    if force and (recent := _forced_recently(ctx, conn, started)) is not None:
        return recent
    # One refresh per connection per process: every caller here shares it, so a stampede
    # costs one lock attempt and one poller per replica, not one per caller.
    shared = ctx.refreshes.joined(connection_id)
    if shared is None:
        wait = LockWait(conn.connector)
        work = _across_replicas(
            ctx, connection_id, version, wait, min_ttl=min_ttl, force=force, started=started
        )
        shared = ctx.refreshes.start(connection_id, work, forced=force)
    return await shared


def join_unforced(ctx: Context, connection_id: str) -> asyncio.Future[StoredToken] | None:
    """The refresh of a stale token this process already runs for the connection, for the
    next stale caller to wait on without `ensure_fresh`'s checks: the caller that started it
    made them. In a stampede every queued caller passes here, and the refresh's first step
    waits behind all of them. A forced refresh is not joined: while backing off after a
    transient failure, a caller is served the still-valid token at once instead."""
    return ctx.refreshes.joined(connection_id, unforced=True)


async def _across_replicas(
    ctx: Context,
    connection_id: str,
    version: int,
    wait: LockWait,
    *,
    min_ttl: float,
    force: bool,
    started: float,
) -> StoredToken:
    key = keys.connection(connection_id)
    try:
        while True:
            try:
                async with holding(ctx, connection_id) as held:
                    if held is not None:
                        wait.end("acquired")
                        return await refresh_locked(
                            ctx, connection_id, held, min_ttl=min_ttl, force=force, since=started
                        )
            except LockLost:
                pass  # whoever holds the lock now writes its own result: wait for it like anyone
            wait.begin()
            # another replica holds the lock: wait for its write, woken by the change feed
            # where the store has one, else at the next poll
            await ctx.changes.wait(key, random.uniform(*POLL_INTERVAL))
            conn, latest = await load_connection(ctx.store, connection_id)
            now = ctx.clock()
            if latest != version:
                version = latest
                check_usable(conn)
                if conn.token is not None and serves(
                    conn.token, force=force, since=started, min_ttl=min_ttl, now=now
                ):
                    wait.end("served")
                    return conn.token
                if conn.refresh.last_error_at is not None and conn.refresh.last_error_at >= started:
                    wait.end("failed")
                    return old_or_fail(conn, now)
            if now - started > WAIT_DEADLINE:
                wait.end("timeout")
                raise RefreshTimeout(f"a refresh of {connection_id} is taking too long; retry")
    except NeedsReauth:
        wait.end("failed")  # the holder found the grant dead
        raise
    except Exception:
        wait.end("error")  # a no-op when the wait had ended already
        raise


async def refresh_locked(
    ctx: Context,
    connection_id: str,
    held: HeldLock,
    *,
    min_ttl: float,
    force: bool,
    since: float,
    proactive: bool = False,
) -> StoredToken:
    """Call only while holding the connection's refresh lock (`held`). An interrupted
    refresh's journal is finished first (`recovery`). `LockLost` when the lock ran out
    before the token was written: the token was not written (a journaled answer is, by
    whoever holds the lock next)."""
    conn, _ = await load_connection(ctx.store, connection_id)
    check_usable(conn)
    recovered = await _recover(ctx, held, conn)
    conn = recovered.conn
    now = ctx.clock()
    token = conn.token
    if recovered.retry_from is None:  # else the spent token must be sent again, now
        if (waiting := within_retry_after(conn, now, force=force)) is not None:
            return waiting  # another replica's attempt was told to wait
        if force and (recent := _forced_recently(ctx, conn, now)) is not None:
            return recent  # another replica's forced refresh, or this one's a moment ago
        if token is not None:
            if (force or not proactive) and serves(
                token, force=force, since=since, min_ttl=min_ttl, now=now
            ):
                return token  # refreshed while we were waiting for the lock, or fresh enough
            margin = ctx.settings.refresh_margin
            if proactive and not proactive_due(conn, now, margin, idle_interval(ctx, conn)):
                return token
    manifest = ctx.catalog.get(conn.connector)
    config = manifest.oauth
    if config is None:
        raise BrokerError(f"{conn.connector} is not an OAuth connector")
    if config.type != "client_credentials" and (token is None or token.refresh_token is None):
        if is_valid(token, now) and token is not None:
            return token
        message = f"connection {conn.id} has no refresh token: the tenant must reconnect"
        return await needs_reauth(ctx, conn, "invalid_grant", message, error="no refresh token")
    return await _spend(ctx, held, conn, manifest, recovered, force=force)


async def _recover(ctx: Context, held: HeldLock, conn: Connection) -> Recovered:
    manifest = ctx.catalog.manifests.get(conn.connector)
    config = manifest.oauth if manifest else None
    if config is None or config.type == "client_credentials":
        return Recovered(conn, 0)  # nothing to lose: a new app token can always be had
    return await recover(ctx, held, conn, config)


async def _spend(
    ctx: Context,
    held: HeldLock,
    conn: Connection,
    manifest: Manifest,
    recovered: Recovered,
    *,
    force: bool,
) -> StoredToken:
    """The provider call and what follows, journaled (`journal`) from just before the
    refresh token leaves until its answer is in the record."""
    assert manifest.oauth is not None
    call = await provider.token_call(ctx, manifest, manifest.oauth, conn)
    seconds = held.provider_seconds()
    crash_points.reached(ctx, "before_intent", manifest.key)
    intent = None
    if call.spent is not None:
        intent = await journal.begin(
            ctx,
            held,
            conn.id,
            call.spent,
            version=recovered.version,
            spent_at=recovered.retry_from,
        )
        try:
            seconds = held.provider_seconds()
        except LockLost:
            await _abandon(ctx, conn.id, intent, recovered)
            raise
    crash_points.reached(ctx, "before_send", manifest.key)
    forced_at = ctx.clock() if force else None
    started = time.perf_counter()
    try:
        fresh = await provider.call_token(ctx, call, seconds=seconds)
    except oauth.InvalidGrant:
        _count_refresh(manifest.key, "invalid_grant", started)
        if intent is not None:
            await journal.clear(ctx, conn.id, intent.version)
        message = f"the provider revoked the grant of {conn.id}: the tenant must reconnect"
        return await needs_reauth(ctx, conn, "invalid_grant", message)
    except oauth.OAuthError as exc:
        _count_refresh(manifest.key, _outcome(exc), started)
        await _abandon(ctx, conn.id, intent, recovered)
        failed = await record_failure(ctx, conn, exc, forced_at)
        return old_or_fail(failed, ctx.clock())
    _count_refresh(manifest.key, "ok", started)
    if intent is not None:
        intent = await journal.record_answer(ctx, held, conn.id, intent, fresh)
        if intent is None:
            dropped(manifest.key, "lock_lost", conn.id)
            raise LockLost(f"the refresh of {conn.id} was taken over before its answer landed")
    crash_points.reached(ctx, "after_journal", manifest.key)
    try:
        updated, written = await write_token(ctx, held, conn, fresh, forced_at)
    except LockLost:
        dropped(manifest.key, "lock_lost", conn.id)  # the journal keeps the answer
        raise
    if not written:  # a reconnect replaced the grant: this answer is of no use to anyone
        if intent is not None:
            await journal.clear(ctx, conn.id, intent.version)
        dropped(manifest.key, "superseded", conn.id)
        check_usable(updated)
        return old_or_fail(updated, ctx.clock())
    crash_points.reached(ctx, "after_apply", manifest.key)
    if intent is not None:
        await journal.clear(ctx, conn.id, intent.version)
    await schedule_next(ctx, updated)
    return fresh


async def _abandon(
    ctx: Context, connection_id: str, intent: Intent | None, recovered: Recovered
) -> None:
    """No answer, and the provider said so (or was never called): the token is as spent as
    before. A first spend's intent goes; a retry's stays, since its token was spent by the
    refresh whose answer was lost, and the journal must go on saying so."""
    if intent is not None and recovered.retry_from is None:
        await journal.clear(ctx, connection_id, intent.version)


def _forced_recently(ctx: Context, conn: Connection, now: float) -> StoredToken | None:
    return forced_recently(conn, now, ctx.settings.forced_refresh_interval)


def _outcome(exc: oauth.OAuthError) -> str:
    if exc.transient:
        return "transient"
    return exc.error if exc.error in TOKEN_ERRORS else "error"


def _count_refresh(connector: str, outcome: str, started: float) -> None:
    metrics.TOKEN_REFRESHES.labels(connector, outcome).inc()
    metrics.TOKEN_REFRESH_DURATION.labels(connector).observe(time.perf_counter() - started)
