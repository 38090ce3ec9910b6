"""Typed application state: everything a handler may reach, one `web.AppKey` each."""

from __future__ import annotations

from aiohttp import web

from broker.config import Settings
from broker.crypto import KeyringFile
from broker.crypto.admin_tokens import AdminTokens
from broker.crypto.runtime_tokens import RuntimeGrant
from broker.manifest import Catalog
from broker.services.context import Context
from broker.store.base import Store
from broker.web.assets import Assets

SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
KEYRING = web.AppKey("keyring", KeyringFile)
ADMIN_TOKENS = web.AppKey("admin_tokens", AdminTokens)
STORE = web.AppKey("store", Store)
"""The raw backend (readiness checks); services use the sealed store in CONTEXT."""
CONTEXT = web.AppKey("context", Context)
ASSETS = web.AppKey("assets", Assets)
"""The Connect pages' stylesheet, script and logo, and the brand."""
GRANT = web.RequestKey("grant", RuntimeGrant)
"""The verified runtime grant of a /v1/runtime request."""
