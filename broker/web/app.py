"""The app factory: the composition root that names the concrete store backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from broker.catalog import Catalog, load_catalog
from broker.config import Settings
from broker.crypto import KeyringFile
from broker.errors import ConfigError
from broker.services.context import Context
from broker.store import open_store
from broker.store.sealed import SealedStore
from broker.web import middlewares
from broker.web.routes import connect, connections, connectors, health, oauth_apps
from broker.web.state import CATALOG, CONTEXT, KEYRING, SETTINGS, STORE


def create_app(settings: Settings, *, catalog: Catalog | None = None) -> web.Application:
    """Build the application; the store and the HTTP client open on startup, close on cleanup.

    The catalog and keyring are loaded here (not lazily) so a broken manifest or a missing
    key stops the broker before it listens: no keyring, no start.
    """
    if settings.keyring_file is None:
        raise ConfigError("BROKER_KEYRING_FILE is not set")
    app = web.Application(
        middlewares=[middlewares.json_errors, middlewares.body_limit, middlewares.admin_auth],
        client_max_size=middlewares.MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[KEYRING] = KeyringFile(settings.keyring_file)
    app[CATALOG] = catalog if catalog is not None else load_catalog(settings.connectors_dirs)
    app.cleanup_ctx.append(_resources)
    for module in (health, connectors, connections, oauth_apps, connect):
        app.add_routes(module.routes)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    store = await open_store(app[SETTINGS].store)
    http = aiohttp.ClientSession(
        # no cookies between providers; redirects are never followed on token endpoints
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=15, connect=5),
    )
    app[STORE] = store
    app[CONTEXT] = Context(
        settings=app[SETTINGS],
        catalog=app[CATALOG],
        store=SealedStore(store, app[KEYRING].get),
        http=http,
    )
    try:
        yield
    finally:
        await http.close()
        await store.close()
