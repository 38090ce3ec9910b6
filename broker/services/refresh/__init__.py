"""Token refresh (DESIGN 5): on demand, single-flight across replicas, and ahead of expiry in
the background. The package's entry point: the rest of the broker imports from here.

- `policy`: when a token is due, what is served meanwhile (pure; its own unit tests);
- `lock`: the refresh lock as its holder sees it (fence, time left for the provider);
- `outcome`: what a refresh writes once the provider answered, and the next due time;
- `engine`: `ensure_fresh` (on demand, shared by every caller of this process through
  `Context.refreshes`, and across replicas through the lock) and `refresh_locked`;
- `scheduler`: the `Refresher`, every replica's background loop over the due index.
"""

from broker.services.refresh.engine import ensure_fresh, join_unforced, refresh_locked
from broker.services.refresh.lock import HeldLock, holding
from broker.services.refresh.outcome import schedule_next
from broker.services.refresh.policy import is_fresh
from broker.services.refresh.scheduler import Refresher

__all__ = [
    "HeldLock",
    "Refresher",
    "ensure_fresh",
    "holding",
    "is_fresh",
    "join_unforced",
    "refresh_locked",
    "schedule_next",
]
