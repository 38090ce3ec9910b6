"""Work this process started and nobody awaits (a refresh's answer still being written while
the store is out): held until done, since the event loop keeps only weak references to
tasks, and settled by a shutdown (`Context.settle`) instead of being dropped mid-write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine
from typing import Any

log = logging.getLogger("broker")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)


async def settle(
    under_way: Callable[[], Collection[asyncio.Future[Any]]],
    within: float,
    clock: Callable[[], float],
) -> int:
    """Wait until `under_way()` is empty (work may start more work meanwhile) or `within`
    seconds passed; then cancel what is left. The number cancelled."""
    deadline = clock() + within
    while pending := under_way():
        left = deadline - clock()
        if left <= 0:
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("shutdown: %d background tasks cut off after %.1f s", len(pending), within)
            return len(pending)
        await asyncio.wait(pending, timeout=left)
    return 0
