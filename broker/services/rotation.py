"""Online rewrap as the operator runs it (`broker keys rewrap`, DESIGN section 4: add ->
promote -> rewrap -> retire): the sealed layer's rewrap (`broker.store.rewrap`) with
progress reports, each with a rate and an ETA, at most every `progress_every` seconds.

The rewrap keeps no cursor of its own: the scan is the progress, so an interrupted run is
resumed by running it again (records already under the primary are skipped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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
    summary = await rewrap_all(store, batch=batch, dry_run=dry_run, on_page=reports.on_page)
    reports.send(summary)
    return summary


class _Reports:
    def __init__(self, total: int, on_progress: ProgressCallback | None, every: float) -> None:
        self.total = total
        self.on_progress = on_progress
        self.every = every
        self.last = time.monotonic()

    def on_page(self, summary: RewrapSummary) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.send(summary)

    def send(self, s: RewrapSummary) -> None:
        if self.on_progress is not None:
            total = max(self.total, s.scanned)  # records created since the count
            self.on_progress(Progress(s.scanned, total, s.rewrapped, s.elapsed))
