"""The Redis store's change feed: every durable write by any replica, heard over pub/sub.

Every durable write announces its key on the namespace's changes channel in the same atomic
step as the write (`scripts.PUT`), so a replica subscribed to the channel misses no write
while the subscription is up. Pub/sub keeps nothing for a subscriber that is away, so every
(re)subscribe and every drop tells the listener to forget everything (`on_change(None)`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from redis.exceptions import RedisError

from broker import metrics
from broker.store.redis.connect import Client
from broker.store.redis.layout import Layout

log = logging.getLogger("broker.store")


async def watch_changes(
    client: Client,
    layout: Layout,
    timeout: float,  # noqa: ASYNC109 - bounds closing a dropped subscription, not this call
    closed: Callable[[], bool],
    on_change: Callable[[str | None], None],
) -> None:
    """Subscribe until cancelled or `closed()`, starting over with a jittered backoff after
    any failure (Redis gone, or a handler that raised)."""
    delay = 0.1
    while not closed():
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(layout.changes_channel)
            on_change(None)
            delay = 0.1
            async for message in pubsub.listen():
                key = message.get("type") == "message" and layout.store_key(message["data"])
                if key:
                    on_change(key)
        except Exception as exc:  # not BaseException: cancellation ends the feed
            # Redis gone, or a handler that failed: start over either way, or every
            # replica's cache and refresh waiters would stop hearing of writes for good
            redis_down = isinstance(exc, RedisError | OSError)
            metrics.background_error(log, "changes", exc, expected=redis_down)
        finally:
            try:
                async with asyncio.timeout(timeout):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            except (RedisError, OSError):
                pass
        try:
            on_change(None)  # what is published until the next subscribe is lost
        except Exception as exc:
            metrics.background_error(log, "changes", exc)
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 5.0)
