"""The app factory: the composition root that names the concrete store backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from broker.catalog import Catalog, load_catalog
from broker.config import Settings
from broker.store import open_store
from broker.web import middlewares
from broker.web.routes import connectors, health
from broker.web.state import CATALOG, SETTINGS, STORE

MAX_BODY_BYTES = 256 * 1024


def create_app(settings: Settings, *, catalog: Catalog | None = None) -> web.Application:
    """Build the application; the store is opened on startup and closed on cleanup.

    The catalog is loaded here (not lazily) so a broken manifest stops the broker before it
    listens.
    """
    app = web.Application(
        middlewares=[middlewares.json_errors, middlewares.admin_auth],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
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
