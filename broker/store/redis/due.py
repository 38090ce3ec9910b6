"""The due-time index on Redis: `DUE_PARTITIONS` sorted sets (see `layout`) read together."""

from __future__ import annotations

import random
from typing import Any

from broker.store.base import DueItem
from broker.store.redis.connect import Client
from broker.store.redis.layout import Layout


async def due_items(client: Client, layout: Layout, now: float, limit: int) -> list[DueItem]:
    """Partitions are read in one pipeline and concatenated from a random partition on, so
    replicas polling at once start on different partitions instead of all fighting over the
    globally earliest items."""
    pipe = client.pipeline(transaction=False)
    for index in layout.due_keys:
        pipe.zrangebyscore(index, "-inf", now, start=0, num=limit, withscores=True)
    rows: list[Any] = await pipe.execute()
    start = random.randrange(len(rows))  # load spreading, not security
    items: list[DueItem] = []
    for row in rows[start:] + rows[:start]:
        for member, score in row:
            items.append(DueItem(bytes(member).decode(), float(score)))
            if len(items) == limit:
                return items
    return items
