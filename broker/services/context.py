"""What every service function works with, built once by the composition root."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from broker.catalog import Catalog
from broker.config import Settings
from broker.services.audit import AuditLog
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
