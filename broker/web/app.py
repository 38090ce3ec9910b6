"""The app factory: the composition root that names the concrete store backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from broker.catalog import Catalog, load_catalog
from broker.config import Settings
from broker.crypto import KeyringFile
from broker.errors import ConfigError
from broker.store import open_store
from broker.web import middlewares
from broker.web.routes import connectors, health
from broker.web.state import CATALOG, KEYRING, SETTINGS, STORE


def create_app(settings: Settings, *, catalog: Catalog | None = None) -> web.Application:
    """Build the application; the store is opened on startup and closed on cleanup.

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
    app.cleanup_ctx.append(_store_ctx)
    app.add_routes(health.routes)
    app.add_routes(connectors.routes)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = await open_store(app[SETTINGS].store)
    app[STORE] = store
    try:
        yield
    finally:
        await store.close()
