"""What a refresh writes when the provider has answered: the new token, a failure to back off
from, or `needs_reauth`; and when the proactive refresher looks again (`schedule_next`).

Each is a CAS update of the connection record (`events.update_connection`) that first checks
the record still holds the token the refresh spent. A reconnect stores a new grant's token
without the refresh lock (see docs/architecture.md), so a refresh of the old grant that
answers later must not put the old grant back, put the new one into backoff or mark it dead:
the new grant wins, and the refresh result is dropped.
"""

from __future__ import annotations

import logging
import random

from broker import metrics
from broker.errors import NeedsReauth
from broker.oauth import OAuthError
from broker.services import events
from broker.services.context import Context
from broker.services.records import Connection, ReauthReason, RefreshState, StoredToken
from broker.services.refresh.lock import HeldLock
from broker.services.refresh.policy import (
    BACKOFF_JITTER,
    backoff_delay,
    check_usable,
    keepalive_interval,
    next_refresh_at,
    old_or_fail,
    retry_after_pause,
)
from broker.store import keys

log = logging.getLogger("broker.refresh")


_REAUTH_LABELS = {"invalid_grant": "invalid_grant", "no refresh token": "no_refresh_token"}
"""`needs_reauth`'s reasons (also the connection's `last_error`) as metric labels."""


def dropped(connector: str, reason: str, connection_id: str) -> None:
    metrics.TOKEN_REFRESHES_DROPPED.labels(connector, reason).inc()
    log.warning("refresh of %s dropped, not written: %s", connection_id, reason)


def _refresh_token(conn: Connection) -> str | None:
    return conn.token.refresh_token if conn.token else None


def _forced_at(conn: Connection, forced_at: float | None) -> float | None:
    return forced_at if forced_at is not None else conn.refresh.last_forced_at


async def write_token(
    ctx: Context, held: HeldLock, spent: Connection, token: StoredToken, forced_at: float | None
) -> tuple[Connection, bool]:
    """Persist a new token onto the newest record, fenced by the refresh lock (`LockLost`
    when it ran out first): an unrelated write (settings) that won the race is kept. Not
    written (False, with the record as it is) when the record no longer holds the token
    that was spent."""

    def change(conn: Connection) -> Connection | None:
        if conn.token != spent.token:
            return None
        now = ctx.clock()
        rotated = token.refresh_token != _refresh_token(conn)
        refresh = RefreshState(
            last_refresh_at=now,
            last_forced_at=_forced_at(conn, forced_at),
            rotation_seen=conn.refresh.rotation_seen or rotated,
        )
        updated = conn.model_copy(update={"token": token, "refresh": refresh, "updated_at": now})
        if conn.refresh.failures:
            updated = events.add(
                ctx,
                updated,
                "connection.recovered",
                {"failures": conn.refresh.failures, "last_error": conn.refresh.last_error},
            )
        return updated

    return await events.update_connection(
        ctx,
        spent.id,
        change,
        contended=f"could not persist the refreshed token of {spent.id}",
        fence=held.fence,
    )


async def record_failure(
    ctx: Context, spent: Connection, exc: OAuthError, forced_at: float | None
) -> Connection:
    """Back off after a failure, never less than the provider's `Retry-After`, which no
    refresh calls it within (`policy.within_retry_after`); the record as it is when a
    reconnect replaced the token meanwhile (the new grant starts with no failures)."""

    def change(conn: Connection) -> Connection | None:
        if conn.token != spent.token:
            return None
        now = ctx.clock()
        failures = conn.refresh.failures + 1
        delay = backoff_delay(failures, random.uniform(*BACKOFF_JITTER), exc.retry_after)
        pause = retry_after_pause(exc.retry_after)
        refresh = conn.refresh.model_copy(
            update={
                "last_error": exc.error
                or (f"http_{exc.provider_status}" if exc.provider_status else exc.code),
                "last_error_at": now,
                "failures": failures,
                "next_attempt_at": now + delay,
                "not_before": now + pause if pause else None,
                "last_forced_at": _forced_at(conn, forced_at),
            }
        )
        updated = conn.model_copy(update={"refresh": refresh, "updated_at": now})
        if failures == 1:  # the first of a streak; `connection.recovered` ends it
            updated = events.add(
                ctx,
                updated,
                "connection.refresh_failed",
                {"status": conn.status, "error": refresh.last_error, "failures": failures},
            )
        return updated

    conn, written = await events.update_connection(
        ctx,
        spent.id,
        change,
        contended=f"could not record the refresh failure of {spent.id}",
    )
    if written:
        assert conn.refresh.next_attempt_at is not None
        await ctx.store.schedule(keys.connection(spent.id), conn.refresh.next_attempt_at)
    return conn


async def needs_reauth(
    ctx: Context, spent: Connection, reason: ReauthReason, message: str, *, error: str | None = None
) -> StoredToken:
    """Mark the connection `needs_reauth` for `reason` (`error`, the refresh's `last_error`,
    defaults to it) and raise `NeedsReauth(message)`, if its record still holds the refresh
    token that failed: an unrelated write meanwhile (settings) does not save a dead grant. If
    another token replaced it (a reconnect, or a holder that took over a lapsed lock), that
    token is served instead while it is valid."""
    dead = _refresh_token(spent)
    error = error or reason

    def change(conn: Connection) -> Connection | None:
        check_usable(conn)
        if _refresh_token(conn) != dead:
            return None
        now = ctx.clock()
        refresh = conn.refresh.model_copy(update={"last_error": error, "last_error_at": now})
        updated = conn.model_copy(
            update={
                "status": "needs_reauth",
                "reauth_reason": reason,
                "refresh": refresh,
                "updated_at": now,
            }
        )
        data = {"status": "needs_reauth", "error": error, "reason": reason}
        return events.add(ctx, updated, "connection.needs_reauth", data)

    conn, written = await events.update_connection(
        ctx,
        spent.id,
        change,
        contended=f"could not mark {spent.id} as needing reauthorization",
    )
    if not written:
        return old_or_fail(conn, ctx.clock())
    await ctx.store.unschedule(keys.connection(spent.id))
    metrics.NEEDS_REAUTH.labels(conn.connector, _REAUTH_LABELS.get(reason, "other")).inc()
    ctx.audit.record(
        actor="broker",
        action="connection.needs_reauth",
        tenant_id=conn.tenant_id,
        connection_id=conn.id,
        outcome=error,
    )
    raise NeedsReauth(message)


def idle_interval(ctx: Context, conn: Connection) -> float:
    """The idle keep-alive interval of this connection's refresh token (`keepalive_interval`
    with its manifest's documented inactivity expiry)."""
    manifest = ctx.catalog.manifests.get(conn.connector)
    config = manifest.oauth if manifest else None
    inactivity = config.refresh_token_inactivity_seconds if config else None
    return keepalive_interval(ctx.settings.idle_refresh_interval, inactivity)


async def schedule_next(ctx: Context, conn: Connection) -> None:
    """Put the connection in the due index for the proactive refresher (`Refresher`), or
    take it out when there is nothing to refresh."""
    at = next_refresh_at(conn, ctx.settings.refresh_margin, idle_interval(ctx, conn))
    if at is None:
        await ctx.store.unschedule(keys.connection(conn.id))
    else:
        await ctx.store.schedule(keys.connection(conn.id), at)
