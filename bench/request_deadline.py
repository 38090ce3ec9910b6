"""What the per-request time limit costs each request: the watchdog's bookkeeping
(`broker.web.deadlines.Deadlines.enter` + `leave`, what every request pays) against the
alternative it replaced, an `asyncio.timeout` around each handler, measured in one run.

    .venv/bin/python bench/request_deadline.py [--requests 200000]

Figures: docs/benchmarks.md, "The per-request time limit".
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any, cast

from broker.web.deadlines import Deadlines


async def per_request(requests: int) -> tuple[float, float]:
    """µs per request: (watchdog enter + leave, `async with asyncio.timeout`)."""
    deadlines = Deadlines(20.0)
    request = cast(Any, object())  # stored, never read, by `enter`
    started = time.perf_counter()
    for _ in range(requests):
        deadlines.leave(deadlines.enter(request))
    watchdog = (time.perf_counter() - started) / requests * 1e6

    async def timed() -> None:
        async with asyncio.timeout(20.0):
            pass

    async def bare() -> None:
        pass

    started = time.perf_counter()
    for _ in range(requests):
        await timed()
    timed_cost = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(requests):
        await bare()
    # the coroutine call itself is not the timer's: a handler is awaited either way
    timer = (timed_cost - (time.perf_counter() - started)) / requests * 1e6
    return watchdog, timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs = [asyncio.run(per_request(args.requests)) for _ in range(args.rounds)]
    watchdog = min(r[0] for r in runs)
    timer = min(r[1] for r in runs)
    print(f"watchdog enter + leave:        {watchdog:.2f} us per request (best of {args.rounds})")
    print(f"asyncio.timeout per request:   {timer:.2f} us per request (best of {args.rounds})")
    print(f"ratio: {timer / watchdog:.1f}x")


if __name__ == "__main__":
    main()
