"""`put_many` on Redis: the PUT script once per item in one non-transactional pipeline.

Each item stays atomic (one single-key script), the batch costs one round trip per node
(redis-py's cluster pipeline splits it by slot). Items are independent: one item's conflict
or error does not undo the others, as `Store.put_many` allows.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import NoScriptError

from broker.store.redis import scripts as lua
from broker.store.redis.connect import Client

Row = tuple[str, bytes, str]
"""(Redis key of the record, value, expected version or '')."""


async def put_pipelined(
    client: Client, sha: str, channel: str, rows: list[Row], ttl: str
) -> list[int]:
    """PUT's result per row (a version or `scripts.CONFLICT`); `ttl` is PUT's ttl argument."""
    results = await _evalsha_all(client, sha, channel, rows, ttl)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        # A restarted or failed-over node forgot its scripts; NOSCRIPT means that item did
        # nothing, so running just those again after loading cannot apply one twice.
        await client.script_load(lua.PUT)
        retried = await _evalsha_all(client, sha, channel, [rows[i] for i in missing], ttl)
        for i, result in zip(missing, retried, strict=True):
            results[i] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return [int(r) for r in results]


async def _evalsha_all(
    client: Client, sha: str, channel: str, rows: list[Row], ttl: str
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for name, value, expect in rows:
        # execute_command, not pipe.evalsha: the cluster pipeline blocks the named method
        # (it cannot know scripts stay on one slot) but routes EVALSHA by its key
        pipe.execute_command("EVALSHA", sha, 1, name, value, expect, ttl, channel)
    results: list[Any] = await pipe.execute(raise_on_error=False)
    return results
