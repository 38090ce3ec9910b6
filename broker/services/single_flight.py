"""Work under way in this process that every caller needing it shares: at most one task per
key, so a stampede of callers costs one task (the refreshes of `services.refresh`, one per
connection: one lock attempt and one waiter per replica, not one per caller).

Held by the `Context`, which every service imports: so it lives beside the context rather
than inside `services/refresh/`, whose modules import the context themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Flight(Generic[T]):
    result: asyncio.Future[T]
    forced: bool


class SingleFlight(Generic[T]):
    """The tasks under way, by key; each leaves the map when it finishes."""

    def __init__(self) -> None:
        self._running: dict[str, _Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def running(self) -> list[asyncio.Future[T]]:
        """The tasks under way (unshielded: for a shutdown to wait on, or cancel)."""
        return [flight.result for flight in self._running.values()]

    def joined(self, key: str, *, unforced: bool = False) -> asyncio.Future[T] | None:
        """The result of the task under way for `key`, to await; None when there is none
        (or, with `unforced`, when it was started `forced`). Shielded: a caller that goes
        away must not cancel the task the others wait for."""
        flight = self._running.get(key)
        if flight is None or (unforced and flight.forced):
            return None
        return asyncio.shield(flight.result)

    def start(
        self, key: str, work: Coroutine[Any, Any, T], *, forced: bool = False
    ) -> asyncio.Future[T]:
        """Run `work` as the task for `key` (call only when `joined` found none); `forced`
        marks it as started on a caller's insistence (a forced refresh). Shielded like
        `joined`."""
        result = asyncio.ensure_future(work)
        self._running[key] = _Flight(result, forced)
        result.add_done_callback(lambda _: self._running.pop(key, None))
        return asyncio.shield(result)
