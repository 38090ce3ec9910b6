"""The per-request time limit (`BROKER_REQUEST_TIMEOUT`): a request whose answer has not
started within the limit is cancelled and answered 503 `timeout`.

One watchdog task per app checks the requests in flight a few times per limit, rather than
`asyncio.timeout` around each handler: that schedules and cancels a timer per request, about
five times what the dict entry here costs, on every runtime read (docs/benchmarks.md, "The
per-request time limit"). The price is precision: a request is cut between the limit and a tenth
of it (at most a second) later.

The limit bounds the time until the answer starts: a handler that streams (a
`StreamResponse` it prepares itself, as a proxy does) has sent its status line and headers,
and from then on is its own to bound (`started`). A cut handler gets `CancelledError` at
the await it was suspended on, as with `asyncio.timeout`; work it shares with other callers
(a refresh under way) is shielded and goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass

from aiohttp import web

from broker import metrics

log = logging.getLogger("broker.web")

MAX_TICK = 1.0


@dataclass(slots=True)
class _InFlight:
    request: web.Request
    deadline: float
    cut: bool = False


class Deadlines:
    """The requests in flight (by the task serving each), and the watchdog that cuts them."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._in_flight: dict[asyncio.Task[object], _InFlight] = {}

    def enter(self, request: web.Request) -> asyncio.Task[object] | None:
        """Start the clock for `request`, served by the current task."""
        task = asyncio.current_task()
        if task is None:
            return None
        deadline = asyncio.get_running_loop().time() + (self.seconds or math.inf)
        self._in_flight[task] = _InFlight(request, deadline)
        return task

    def leave(self, task: asyncio.Task[object] | None) -> None:
        """Stop the clock. A cut that the handler swallowed is taken back here."""
        entry = self._in_flight.pop(task, None) if task is not None else None
        if entry is not None and entry.cut:
            task.uncancel()  # type: ignore[union-attr]

    def cut(self, task: asyncio.Task[object] | None) -> bool:
        """Whether a `CancelledError` the task got came from the watchdog alone (as
        `asyncio.timeout` decides): then it is taken back, so the request can be answered.
        A cancellation from elsewhere too (a shutdown past its grace) goes on."""
        entry = self._in_flight.get(task) if task is not None else None
        if entry is None or not entry.cut:
            return False
        entry.cut = False
        return task.uncancel() == 0  # type: ignore[union-attr]

    def __len__(self) -> int:
        """The requests in flight (and answers streaming, until their limit passed)."""
        return len(self._in_flight)

    async def run(self) -> None:
        if not self.seconds:
            return  # no limit: nothing to watch
        tick = min(MAX_TICK, max(0.01, self.seconds / 10))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            try:
                self.check(loop.time())
            except Exception as exc:  # the next look may work; the watchdog must outlive it
                metrics.background_error(log, "request-watchdog", exc)

    def check(self, now: float) -> None:
        for task, entry in list(self._in_flight.items()):
            if entry.cut or entry.deadline > now:
                continue
            if started(entry.request):
                del self._in_flight[task]  # a streamed answer bounds itself from here
                continue
            entry.cut = True
            task.cancel()


def started(request: web.Request) -> bool:
    """Whether the answer to `request` has begun to leave (a prepared `StreamResponse` sends
    its headers at once; a plain `Response` leaves after its handler returned)."""
    return request.writer.output_size > 0
