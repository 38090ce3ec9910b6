"""The loop behind the background workers that share the store's due-time index."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from broker import metrics


async def poll_forever(
    name: metrics.BackgroundLoop,
    run_once: Callable[[], Awaitable[int]],
    *,
    batch: int,
    interval: float,
    stop: asyncio.Event | None = None,
) -> None:
    """Call `run_once` until cancelled, or until `stop` is set (then the turn under way
    ends first: a shutdown lets the refreshes and deliveries it started finish): again at
    once while it handles full batches (a backlog), else after a jittered `interval`, so
    replicas do not poll in step. A failed poll (a store outage, or anything else) is
    logged, counted and waited out, never fatal: the loop serves every connection of the
    replica."""
    log = logging.getLogger(f"broker.{name}")
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            handled = await run_once()
        except Exception as exc:  # not BaseException: cancellation ends the loop
            metrics.background_error(log, name, exc)
            handled = 0
        if handled < batch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval * random.uniform(0.5, 1.5))
