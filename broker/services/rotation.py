"""Online rewrap as the operator runs it (`broker keys rewrap`, DESIGN section 4: add ->
promote -> rewrap -> retire): the sealed layer's rewrap (`broker.store.rewrap`) with
progress reports, each with a rate and an ETA, at most every `progress_every` seconds.

The rewrap keeps no cursor of its own: the scan is the progress, so an interrupted run is
resumed by running it again (records already under the primary are skipped).

Its figures are kept in `metrics.REWRAP_REGISTRY` too, page by page, for `broker keys
rewrap --metrics-file` (the rewrap runs in the command line, which nothing scrapes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args

from broker import metrics
from broker.store.rewrap import DEFAULT_BATCH, RewrapSummary, rewrap_all
from broker.store.sealed import SealedStore


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    """Records scanned so far (rewrapped, skipped or failed)."""
    total: int
    rewrapped: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate; None before there is a rate."""
        rate = self.rate
        return max(0, self.total - self.done) / rate if rate > 0 else None


ProgressCallback = Callable[[Progress], None]


async def rewrap(
    store: SealedStore,
    *,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    total: int = 0,
    on_progress: ProgressCallback | None = None,
    progress_every: float = 0.5,
) -> RewrapSummary:
    """Reseal every record not under `store.keyring.primary` (see `broker.store.rewrap`).

    `total` (e.g. from `count_by_key`) only feeds the progress figures. `on_progress` is
    called at most every `progress_every` seconds, and once at the end."""
    reports = _Reports(total, on_progress, progress_every)
    _started(total)
    try:
        summary = await rewrap_all(store, batch=batch, dry_run=dry_run, on_page=reports.on_page)
    finally:
        metrics.REWRAP_RUNNING.set(0)
    reports.send(summary)
    return summary


def _started(total: int) -> None:
    metrics.REWRAP_EXPECTED.set(total)
    metrics.REWRAP_RUNNING.set(1)
    for result in get_args(metrics.RewrapResult):
        metrics.REWRAP_RECORDS.labels(result).set(0)


def _counted(s: RewrapSummary) -> None:
    counts = {
        "scanned": s.scanned,
        "rewrapped": s.rewrapped,
        "skipped": s.skipped,
        "vanished": s.vanished,
        "failed": sum(s.failed.values()),
    }
    for result, count in counts.items():
        metrics.REWRAP_RECORDS.labels(result).set(count)


class _Reports:
    def __init__(self, total: int, on_progress: ProgressCallback | None, every: float) -> None:
        self.total = total
        self.on_progress = on_progress
        self.every = every
        self.last = time.monotonic()

    def on_page(self, summary: RewrapSummary) -> None:
        _counted(summary)
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.send(summary)

    def send(self, s: RewrapSummary) -> None:
        _counted(s)
        if self.on_progress is not None:
            total = max(self.total, s.scanned)  # records created since the count
            self.on_progress(Progress(s.scanned, total, s.rewrapped, s.elapsed))
