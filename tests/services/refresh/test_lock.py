"""The refresh lock's time budget: the provider call gets what is left of the lock, less the
share kept for the writes, never a fixed part of the TTL."""

from __future__ import annotations

import time

import pytest

from broker.errors import LockLost
from broker.services.provider_send import MAX_SECONDS
from broker.services.refresh.lock import MIN_PROVIDER_SECONDS, WRITE_SHARE, HeldLock
from broker.store import keys
from broker.store.base import Fence

FENCE = Fence(keys.refresh_lock("conn_a"), "owner")


def held(ttl: float, left: float) -> HeldLock:
    return HeldLock(FENCE, ttl, time.monotonic() + left)


def test_a_fresh_lock_gives_the_provider_all_but_the_write_share() -> None:
    assert held(15.0, 15.0).provider_seconds() == MAX_SECONDS  # 11.25 s left: capped
    seconds = held(4.0, 4.0).provider_seconds()
    assert 4.0 * (1 - WRITE_SHARE) - 0.5 < seconds <= 4.0 * (1 - WRITE_SHARE)


def test_time_spent_before_the_call_comes_off_the_provider_s_share() -> None:
    # 10 of 15 s already gone (slow store reads): 5 - 3.75 left, not 60% of the TTL
    seconds = held(15.0, 5.0).provider_seconds()
    assert 1.25 - 0.5 < seconds <= 1.25


def test_too_little_left_spends_nothing() -> None:
    with pytest.raises(LockLost):
        held(15.0, 15.0 * WRITE_SHARE + MIN_PROVIDER_SECONDS / 2).provider_seconds()
    with pytest.raises(LockLost):
        held(15.0, -1.0).provider_seconds()
