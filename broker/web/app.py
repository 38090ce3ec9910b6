"""The app factory: the composition root that names the concrete store backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from broker.config import Settings
from broker.crypto import KeyringFile
from broker.crypto.admin_tokens import AdminTokens
from broker.errors import ConfigError
from broker.manifest import Catalog, load_catalog
from broker.metrics import background_error
from broker.services.audit import AuditLog
from broker.services.context import Context
from broker.services.events import EventWorker
from broker.services.proxy import Egress
from broker.services.refresh import Refresher
from broker.store import open_store
from broker.store.base import ChangeFeed
from broker.store.cache import RecordCache
from broker.store.measured import MeasuredStore, backend_name
from broker.store.sealed import SealedStore
from broker.web import request_guard
from broker.web.access_log import UNPARSEABLE_REQUESTS
from broker.web.assets import load_assets
from broker.web.routes import (
    assets,
    connect,
    connections,
    connectors,
    events,
    health,
    metrics,
    oauth_apps,
    oauth_callback,
    openapi,
    proxy,
    runtime,
    webhooks,
)
from broker.web.state import ADMIN_TOKENS, ASSETS, CATALOG, CONTEXT, KEYRING, SETTINGS, STORE

log = logging.getLogger("broker")


def create_app(settings: Settings, *, catalog: Catalog | None = None) -> web.Application:
    """Build the application; the store and the HTTP client open on startup, close on cleanup.

    The catalog and keyring are loaded here (not lazily) so a broken manifest or a missing
    key stops the broker before it listens: no keyring, no start.
    """
    if settings.keyring_file is None:
        raise ConfigError("BROKER_KEYRING_FILE is not set")
    app = web.Application(client_max_size=request_guard.MAX_BODY_BYTES)
    # aiohttp's own line for a request it cannot parse quotes the request (once per process)
    logging.getLogger("aiohttp.server").addFilter(UNPARSEABLE_REQUESTS)
    app[SETTINGS] = settings
    app[KEYRING] = KeyringFile(settings.keyring_file)
    app[ADMIN_TOKENS] = AdminTokens(
        [t.get_secret_value() for t in settings.admin_token], settings.admin_token_file
    )
    app[CATALOG] = catalog if catalog is not None else load_catalog(settings.connectors_dirs)
    app[ASSETS] = load_assets(settings)
    app.cleanup_ctx.append(_resources)
    for module in (
        health,
        metrics,
        openapi,
        connectors,
        connections,
        oauth_apps,
        connect,
        oauth_callback,
        assets,
        runtime,
        proxy,
        webhooks,
        events,
    ):
        app.add_routes([_handled(route) for route in module.routes])
    app.router.add_route(
        "*",
        request_guard.UNMATCHED_PATH,
        request_guard.handled(request_guard.unmatched),
        name=request_guard.UNMATCHED,
    )
    return app


def _handled(route: web.AbstractRouteDef) -> web.RouteDef:
    """The route with its handler behind `request_guard.handle`; registered as given (a GET
    route answers HEAD too)."""
    assert isinstance(route, web.RouteDef)
    return web.RouteDef(
        route.method, route.path, request_guard.handled(route.handler), route.kwargs
    )


KEYRING_POLL = 2.0


def reload_keyring(holder: KeyringFile) -> None:
    """Swap in the keyring file's current contents; a broken file keeps the old keyring
    (and is reported on /readyz) rather than stopping a serving broker."""
    try:
        keyring = holder.reload()
    except ConfigError as exc:
        log.error("keyring reload failed, still using the previous keyring: %s", exc)
        return
    log.info("keyring reloaded: primary %s, keys %s", keyring.primary, ", ".join(keyring.ids))


async def _watch_keyring(holder: KeyringFile) -> None:
    # `broker keys add|promote|retire` rewrite the file atomically; every replica with the
    # file mounted follows within a couple of seconds, no signal needed
    while True:
        await asyncio.sleep(KEYRING_POLL)
        try:
            if holder.changed():
                reload_keyring(holder)
        except Exception as exc:  # the next look may work; the watch must outlive this one
            background_error(log, "keyring-watch", exc)


def _reload_on_sighup(holder: KeyringFile) -> None:
    # outside the main thread (embedded use) there are no signals: the file watch still applies
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_keyring, holder)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    backend = await open_store(app[SETTINGS].store)
    store = MeasuredStore(backend, backend_name(app[SETTINGS].store))
    http = aiohttp.ClientSession(
        # no cookies between providers; redirects are never followed on token endpoints
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=15, connect=5),
    )
    settings = app[SETTINGS]
    cache = RecordCache(store.get) if isinstance(backend, ChangeFeed) else None
    sealed = SealedStore(store, app[KEYRING].get, cache)
    audit = AuditLog(sealed, time.time, settings.audit_retention)
    egress = Egress(settings.egress_nameservers)
    await egress.start()
    ctx = Context(
        settings=settings,
        catalog=app[CATALOG],
        store=sealed,
        http=http,
        audit=audit,
        egress=egress,
    )
    app[STORE] = store
    app[CONTEXT] = ctx
    tasks = [asyncio.create_task(audit.run(), name="audit-flush")]
    if cache is not None:
        assert isinstance(backend, ChangeFeed)
        notifier = ctx.changes

        def on_change(key: str | None) -> None:
            cache.on_change(key)
            notifier.notify(key)

        tasks.append(asyncio.create_task(backend.watch_changes(on_change), name="changes"))
    if settings.refresher:
        tasks.append(asyncio.create_task(Refresher(ctx).run(), name="refresher"))
    if settings.events_worker:
        # polls at least as often as the first retry is due (tests shorten both)
        worker = EventWorker(ctx, interval=min(0.5, settings.events_retry_base))
        tasks.append(asyncio.create_task(worker.run(), name="event-worker"))
    tasks.append(asyncio.create_task(_watch_keyring(app[KEYRING]), name="keyring-watch"))
    _reload_on_sighup(app[KEYRING])
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await audit.flush()
        finally:
            await egress.close()
            await http.close()
            await store.close()
