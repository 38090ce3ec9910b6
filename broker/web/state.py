"""Typed application state: everything a handler may reach, one `web.AppKey` each."""

from __future__ import annotations

import time

from aiohttp import web

from broker.config import Settings
from broker.crypto import KeyringFile
from broker.crypto.admin_tokens import AdminTokens
from broker.crypto.runtime_tokens import RuntimeGrant
from broker.manifest import Catalog
from broker.services.context import Context
from broker.store.base import Store
from broker.web.assets import Assets
from broker.web.deadlines import Deadlines

SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
KEYRING = web.AppKey("keyring", KeyringFile)
ADMIN_TOKENS = web.AppKey("admin_tokens", AdminTokens)
STORE = web.AppKey("store", Store)
"""The raw backend (readiness checks); services use the sealed store in CONTEXT."""
CONTEXT = web.AppKey("context", Context)
ASSETS = web.AppKey("assets", Assets)
"""The Connect pages' stylesheet, script and logo, and the brand."""


class Shutdown:
    """A shutdown under way (`broker.web.server`): /readyz answers 503 from its start, and
    the app's cleanup gives background work what is left of `BROKER_SHUTDOWN_GRACE`."""

    def __init__(self) -> None:
        self.began: float | None = None

    def begin(self) -> None:
        if self.began is None:
            self.began = time.monotonic()

    def left(self, grace: float) -> float:
        """Seconds left of `grace` (all of it where no shutdown was announced: an embedding
        that just cleans the app up)."""
        return grace if self.began is None else grace - (time.monotonic() - self.began)


DEADLINES = web.AppKey("deadlines", Deadlines)
"""The requests in flight and their time limit (`BROKER_REQUEST_TIMEOUT`)."""
SHUTDOWN = web.AppKey("shutdown", Shutdown)
GRANT = web.RequestKey("grant", RuntimeGrant)
"""The verified runtime grant of a /v1/runtime request."""
