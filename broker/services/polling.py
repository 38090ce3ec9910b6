"""The loop behind the background workers that share the store's due-time index."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from broker.errors import BrokerError


async def poll_forever(
    name: str, run_once: Callable[[], Awaitable[int]], *, batch: int, interval: float
) -> None:
    """Call `run_once` until cancelled: again at once while it handles full batches (a
    backlog), else after a jittered `interval`, so replicas do not poll in step. A store
    outage is logged and waited out, never fatal."""
    log = logging.getLogger(f"broker.{name}")
    while True:
        try:
            handled = await run_once()
        except BrokerError as exc:
            log.warning("%s: %s", name, exc.code)
            handled = 0
        if handled < batch:
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
