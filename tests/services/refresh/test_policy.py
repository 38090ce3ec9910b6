"""The refresh policy (broker.services.refresh.policy) on records and a clock alone: when a
token is due, what a caller is served meanwhile, how long a failure backs off."""

from __future__ import annotations

from typing import Any

import pytest

from broker.errors import NeedsReauth, ProviderError, RateLimited
from broker.services.records import Connection, RefreshState, StoredToken
from broker.services.refresh import policy

NOW = 1_800_000_000.0
HOUR = 3600.0


def token(lifetime: float | None = HOUR, left: float | None = HOUR, **fields: Any) -> StoredToken:
    """A token `lifetime` seconds long with `left` of them to go (None: no expiry)."""
    if lifetime is None or left is None:
        return StoredToken(access_token="at", obtained_at=NOW - 10, **fields)
    expires_at = NOW + left
    return StoredToken(
        access_token="at", expires_at=expires_at, obtained_at=expires_at - lifetime, **fields
    )


def connection(tok: StoredToken | None = None, **fields: Any) -> Connection:
    return Connection(
        id="conn_" + "a" * 26,
        tenant_id="t1",
        connector="acme",
        token=tok,
        created_at=NOW - HOUR,
        updated_at=NOW - HOUR,
        **fields,
    )


def test_the_margin_is_capped_at_half_the_token_s_life() -> None:
    assert policy.effective_margin(token(lifetime=HOUR), 300) == 300
    assert policy.effective_margin(token(lifetime=120), 300) == 60
    assert policy.effective_margin(token(lifetime=None), 300) == 300  # no expiry: as asked


def test_fresh_means_more_than_the_capped_margin_left() -> None:
    assert policy.is_fresh(token(left=301), 300, NOW)
    assert not policy.is_fresh(token(left=300), 300, NOW)
    # 2-minute tokens with a 5-minute min_ttl: fresh for their first minute, not never
    assert policy.is_fresh(token(lifetime=120, left=61), 300, NOW)
    assert not policy.is_fresh(token(lifetime=120, left=60), 300, NOW)
    assert policy.is_fresh(token(lifetime=None), 10**9, NOW)
    assert not policy.is_fresh(None, 0, NOW)


def test_valid_means_not_expired() -> None:
    assert policy.is_valid(token(left=1), NOW)
    assert not policy.is_valid(token(left=0), NOW)
    assert policy.is_valid(token(lifetime=None), NOW)
    assert not policy.is_valid(None, NOW)


def test_a_forced_caller_needs_a_token_obtained_since_it_asked() -> None:
    fresh = token(left=HOUR)
    asked = fresh.obtained_at + 1
    assert not policy.serves(fresh, force=True, since=asked, min_ttl=300, now=NOW)
    assert policy.serves(fresh, force=True, since=fresh.obtained_at, min_ttl=300, now=NOW)
    assert policy.serves(fresh, force=False, since=asked, min_ttl=300, now=NOW)
    assert not policy.serves(token(left=100), force=False, since=asked, min_ttl=300, now=NOW)


def test_only_an_active_connection_is_usable() -> None:
    policy.check_usable(connection())
    for status in ("needs_reauth", "revoked"):
        with pytest.raises(NeedsReauth, match=status):
            policy.check_usable(connection(status=status))


def test_after_a_failure_the_old_token_is_served_while_valid() -> None:
    valid = token(left=10)
    assert policy.old_or_fail(connection(valid), NOW) is valid
    failed = connection(token(left=-1), refresh=RefreshState(last_error="http_503"))
    with pytest.raises(ProviderError, match="http_503"):
        policy.old_or_fail(failed, NOW)


def test_backoff_doubles_from_5_s_up_to_10_min() -> None:
    assert [policy.backoff_delay(n, 1.0) for n in range(1, 9)] == [
        5,
        10,
        20,
        40,
        80,
        160,
        320,
        600,
    ]
    assert policy.backoff_delay(30, 1.0) == policy.BACKOFF_MAX
    low, high = policy.BACKOFF_JITTER
    assert policy.backoff_delay(2, low) == 10 * low and policy.backoff_delay(2, high) == 10 * high


def test_the_backoff_stays_capped_however_long_the_streak() -> None:
    # 2.0 ** 1024 overflows a float: the 1,025th failure in a row used to raise
    for failures in (1024, 1025, 1026, 10_000, 2**40):
        assert policy.backoff_delay(failures, 1.0) == policy.BACKOFF_MAX


def test_the_backoff_is_never_shorter_than_the_providers_retry_after() -> None:
    assert policy.backoff_delay(1, 1.0, retry_after=30) == 30
    assert policy.backoff_delay(1, 1.0, retry_after=2) == 5  # ours is longer: ours
    assert policy.backoff_delay(8, 1.2, retry_after=30) == 720
    # a date years ahead (a broken header) pauses the connection for an hour at most
    assert policy.backoff_delay(1, 1.0, retry_after=10**9) == policy.RETRY_AFTER_MAX
    assert policy.retry_after_pause(None) == 0 and policy.retry_after_pause(10**9) == 3600


def test_within_the_providers_retry_after_nothing_calls_it() -> None:
    paused = RefreshState(not_before=NOW + 20, next_attempt_at=NOW + 20)
    valid = token(left=10)
    # forced or not: the token while it is valid
    for force in (False, True):
        assert policy.within_retry_after(connection(valid, refresh=paused), NOW, force=force) is (
            valid
        )
    expired = connection(token(left=-1), refresh=paused.model_copy(update={"last_error": "x"}))
    with pytest.raises(ProviderError, match="expired"):
        policy.within_retry_after(expired, NOW, force=False)
    with pytest.raises(RateLimited) as raised:  # a forced refresh says when to come back
        policy.within_retry_after(expired, NOW + 4.5, force=True)
    assert raised.value.retry_after == 16
    # past it, or never asked: the provider may be called
    assert policy.within_retry_after(expired, NOW + 20, force=True) is None
    assert policy.within_retry_after(connection(token(left=-1)), NOW, force=True) is None


def test_backing_off_until_the_next_attempt() -> None:
    assert policy.backing_off(connection(refresh=RefreshState(next_attempt_at=NOW + 1)), NOW)
    assert not policy.backing_off(connection(refresh=RefreshState(next_attempt_at=NOW)), NOW)
    assert not policy.backing_off(connection(), NOW)


def test_a_second_forced_refresh_within_the_interval_gets_the_current_token() -> None:
    forced = RefreshState(last_forced_at=NOW - 4)
    current = token(left=HOUR)
    assert policy.forced_recently(connection(current, refresh=forced), NOW, 10) is current
    # outside the window (or never forced) the provider may be called
    assert policy.forced_recently(connection(current, refresh=forced), NOW, 4) is None
    assert policy.forced_recently(connection(current), NOW, 10) is None


def test_within_the_interval_an_expired_token_is_rate_limited() -> None:
    forced = RefreshState(last_forced_at=NOW - 7.5)
    with pytest.raises(RateLimited) as raised:
        policy.forced_recently(connection(token(left=-1), refresh=forced), NOW, 10)
    assert raised.value.retry_after == 3  # 2.5 s left, rounded up


def test_the_proactive_refresher_comes_a_minute_before_on_demand_callers() -> None:
    margin = 300.0
    long_lived = token(lifetime=HOUR)
    assert policy.proactive_margin(long_lived, margin) == margin + policy.PROACTIVE_LEAD
    # short tokens: at most 75 % of their life, or it would refresh all the time
    assert policy.proactive_margin(token(lifetime=120), margin) == 90
    assert policy.proactive_due(connection(token(left=360)), NOW, margin, 0)
    assert not policy.proactive_due(connection(token(left=361)), NOW, margin, 0)
    expires_at = long_lived.expires_at
    assert expires_at is not None
    assert policy.next_refresh_at(connection(long_lived), margin, 0) == expires_at - 360


def test_idle_refresh_tokens_are_exercised_every_interval() -> None:
    idle = token(lifetime=None, refresh_token="rt")  # obtained 10 s ago, no expiry
    week = 7 * 24 * HOUR
    assert policy.next_refresh_at(connection(idle), 300, week) == idle.obtained_at + week
    assert not policy.proactive_due(connection(idle), NOW, 300, week)
    assert policy.proactive_due(connection(idle), idle.obtained_at + week, 300, week)
    assert not policy.proactive_due(connection(idle), NOW + week, 300, 0)  # 0: never
    no_refresh_token = token(lifetime=None)
    assert policy.next_refresh_at(connection(no_refresh_token), 300, week) is None


def test_nothing_is_due_without_an_active_token() -> None:
    assert policy.next_refresh_at(connection(None), 300, HOUR) is None
    assert not policy.proactive_due(connection(token(left=0), status="needs_reauth"), NOW, 300, 0)
    assert policy.next_refresh_at(connection(token(), status="revoked"), 300, HOUR) is None
