"""What every service function works with, built once by the composition root."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from broker.config import Settings
from broker.manifest import Catalog
from broker.services.audit import AuditLog
from broker.services.proxy import Egress
from broker.services.records import StoredToken
from broker.services.single_flight import SingleFlight
from broker.store.cache import ChangeNotifier
from broker.store.sealed import SealedStore


@dataclass
class Context:
    settings: Settings
    catalog: Catalog
    store: SealedStore
    http: aiohttp.ClientSession
    """One shared client session for providers and the runtime (bounded timeouts per call)."""
    audit: AuditLog
    clock: Callable[[], float] = field(default=time.time)
    changes: ChangeNotifier = field(default_factory=ChangeNotifier)
    """Wakes whoever waits for a key to change (fed by the store's change feed, if any)."""
    refreshes: SingleFlight[StoredToken] = field(default_factory=SingleFlight)
    """Refreshes under way in this process, one per connection id (`services.refresh`); a
    forced one (a runtime said the token was refused) is not joined by plain reads."""
    egress: Egress = field(default_factory=Egress)
    """Provider calls through the egress proxy: `permissions.http`, address checks, and its
    own connection pools (started and closed by the composition root)."""
