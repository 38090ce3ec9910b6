"""When a token is refreshed, and what a caller is served meanwhile: arithmetic on a
connection record and the clock, nothing else (no I/O, no store, no provider), so every rule
of DESIGN 5 can be tested on its own (tests/services/refresh/test_policy.py).
"""

from __future__ import annotations

import math

from broker.errors import NeedsReauth, ProviderError, RateLimited
from broker.services.records import Connection, StoredToken

BACKOFF_BASE, BACKOFF_MAX = 5.0, 600.0
BACKOFF_JITTER = (0.8, 1.2)
"""A backoff delay is multiplied by a factor drawn from this range: replicas and connections
that failed together do not retry together."""
_DOUBLINGS_TO_MAX = math.ceil(math.log2(BACKOFF_MAX / BACKOFF_BASE))
RETRY_AFTER_MAX = 3600.0
"""The longest a provider's `Retry-After` pauses a connection's refreshes: a date years ahead
(a broken header) must not park a grant for good."""
PROACTIVE_LEAD = 60.0
"""Seconds earlier than on-demand callers would refresh: the background refresher gets there
first, so runtimes are served a fresh token instead of waiting on the provider."""


def effective_margin(token: StoredToken, wanted: float) -> float:
    """A margin never above half the token's life: with 5-minute margins and 2-minute tokens
    every call would otherwise refresh."""
    if token.expires_at is None:
        return wanted
    return min(wanted, max(0.0, (token.expires_at - token.obtained_at) / 2))


def is_fresh(token: StoredToken | None, min_ttl: float, now: float) -> bool:
    if token is None:
        return False
    if token.expires_at is None:
        return True
    return token.expires_at - now > effective_margin(token, min_ttl)


def is_valid(token: StoredToken | None, now: float) -> bool:
    return token is not None and (token.expires_at is None or token.expires_at > now)


def serves(token: StoredToken, *, force: bool, since: float, min_ttl: float, now: float) -> bool:
    """Whether `token` answers a caller who asked at `since`: a forced refresh needs one
    obtained since then, anyone else one fresh for `min_ttl`."""
    return token.obtained_at >= since if force else is_fresh(token, min_ttl, now)


def check_usable(conn: Connection) -> None:
    if conn.status != "active":
        raise NeedsReauth(f"connection {conn.id} is {conn.status}: the tenant must reconnect")


def old_or_fail(conn: Connection, now: float) -> StoredToken:
    """After a transient failure: keep serving the old token while it is valid (DESIGN 5)."""
    if conn.token is not None and is_valid(conn.token, now):
        return conn.token
    raise ProviderError(
        f"the provider failed to refresh the token of {conn.id} ({conn.refresh.last_error}) "
        "and the old one has expired"
    )


def backing_off(conn: Connection, now: float) -> bool:
    at = conn.refresh.next_attempt_at
    return at is not None and at > now


def backoff_delay(failures: int, jitter: float, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after `failures` transient failures in a row: 5 s
    doubling up to 10 min, times `jitter` (drawn from `BACKOFF_JITTER`), and never less
    than the provider's `retry_after` (see `retry_after_pause`)."""
    # the exponent is capped first: 2.0 ** 1024 overflows, and a streak gets that long
    doublings = min(failures - 1, _DOUBLINGS_TO_MAX)
    ours = min(BACKOFF_MAX, BACKOFF_BASE * 2.0**doublings) * jitter
    return max(ours, retry_after_pause(retry_after))


def retry_after_pause(retry_after: float | None) -> float:
    """The seconds a provider's `Retry-After` keeps every refresh away, capped."""
    return min(retry_after or 0.0, RETRY_AFTER_MAX)


def within_retry_after(conn: Connection, now: float, *, force: bool) -> StoredToken | None:
    """Inside the pause the provider asked for (`RefreshState.not_before`) nothing calls it,
    not even a forced refresh or a caller whose token has expired (calling would only earn
    another 429): the current token while it is valid, else the error a failed attempt
    gives (`RateLimited` with the seconds left for a forced refresh, whose route answers 429
    with Retry-After; `ProviderError` for a read). None outside it."""
    until = conn.refresh.not_before
    if until is None or now >= until:
        return None
    if force and not is_valid(conn.token, now):
        raise RateLimited(
            f"the provider asked not to be called for the token of {conn.id} yet; "
            "retry after the Retry-After seconds",
            retry_after=max(1, math.ceil(until - now)),
        )
    return old_or_fail(conn, now)


def forced_recently(conn: Connection, now: float, interval: float) -> StoredToken | None:
    """Within `interval` (`BROKER_FORCED_REFRESH_INTERVAL`) of a forced refresh that reached
    the provider, another one does not (a runtime looping on 401s would hammer it): it gets
    the current token while that is valid, else `RateLimited`. None outside that window."""
    last = conn.refresh.last_forced_at
    until = None if last is None else last + interval
    if until is None or now >= until:
        return None
    if conn.token is not None and is_valid(conn.token, now):
        return conn.token
    raise RateLimited(
        f"the token of {conn.id} was force-refreshed moments ago and has expired since; "
        "retry after the Retry-After seconds",
        retry_after=max(1, math.ceil(until - now)),
    )


def proactive_margin(token: StoredToken, margin: float) -> float:
    assert token.expires_at is not None
    lifetime = token.expires_at - token.obtained_at
    return min(margin + PROACTIVE_LEAD, max(0.0, lifetime * 0.75))


def proactive_due(conn: Connection, now: float, margin: float, idle_interval: float) -> bool:
    """Whether the background refresher should refresh now."""
    token = conn.token
    if conn.status != "active" or token is None:
        return False
    if token.expires_at is not None:
        return token.expires_at - now <= proactive_margin(token, margin)
    return (
        token.refresh_token is not None
        and idle_interval > 0
        and now >= token.obtained_at + idle_interval
    )


def next_refresh_at(conn: Connection, margin: float, idle_interval: float) -> float | None:
    """When the proactive refresher should look at this connection next."""
    token = conn.token
    if conn.status != "active" or token is None:
        return None
    if token.expires_at is not None:
        return token.expires_at - proactive_margin(token, margin)
    if token.refresh_token is not None and idle_interval > 0:
        return token.obtained_at + idle_interval  # exercise idle refresh tokens before they lapse
    return None


def keepalive_interval(global_interval: float, inactivity: int | None) -> float:
    """How often an idle refresh token (no expiring access token to refresh) is exercised:
    half the provider's documented inactivity expiry, so a failed attempt and its backoff
    still land in time; the global `BROKER_IDLE_REFRESH_INTERVAL` where none is documented."""
    return inactivity / 2 if inactivity else global_interval
