"""`broker serve`: run the HTTP server (with `--dev`, first make a local keyring and token)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import secrets
from pathlib import Path
from typing import Any

from broker.config import Settings, load_settings, read_settings
from broker.crypto import Keyring, save_keyring
from broker.errors import ConfigError
from broker.logs import configure_logging

DEV_DIR = Path("broker-data")


def add_serve_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="listen address (BROKER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (BROKER_PORT, default 8080)")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="first run: make a local keyring and admin token under ./broker-data",
    )
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        k: v for k in ("host", "port") if (v := getattr(args, k)) is not None
    }
    if args.dev:
        overrides["dev"] = True
        overrides.update(_dev_credentials(load_settings(**overrides)))
    # the server (aiohttp's web side and every route) is loaded only by the command that
    # serves, so the operator's other commands start without it
    from broker.web.app import create_app
    from broker.web.server import serve
    from broker.web.state import CATALOG

    settings, problems = read_settings(**overrides)
    app = None
    if settings is not None:
        problems += settings.runnable_problems()
        try:
            app = create_app(settings)
        except ConfigError as exc:
            named = {p.split(":", 1)[0] for p in problems}
            problems += [p for p in exc.problems if p.split(":", 1)[0] not in named]
    if problems or settings is None or app is None:
        raise ConfigError.listing(problems)
    configure_logging(settings.log_format, settings.log_level)
    logging.getLogger("broker").info(
        "serving %d connectors on http://%s:%d (store %s)",
        len(app[CATALOG]),
        settings.host,
        settings.port,
        _store_label(settings),
    )
    # Everything built so far (catalog, models, modules) lives as long as the process: keep
    # it out of the cyclic collector's way, which otherwise rescans it on every full pass.
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=_event_loop) as runner:
        runner.run(serve(app, settings.host, settings.port))
    return 0


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed: its socket handling is cheaper per request (the measured
    step is in docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _store_label(settings: Settings) -> str:
    # never print credentials embedded in a redis URL
    scheme, _, rest = settings.store.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def _dev_credentials(settings: Settings) -> dict[str, Any]:
    """Create (once) and print the dev keyring path and admin token."""
    DEV_DIR.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = {}
    keyring_file = settings.keyring_file or DEV_DIR / "keyring.json"
    if not keyring_file.exists():
        save_keyring(keyring_file, Keyring.generate())
    found["keyring_file"] = keyring_file
    token = settings.admin_token[0].get_secret_value() if settings.admin_token else None
    if token is None:
        token_file = DEV_DIR / "admin-token"
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(32) + "\n")
            token_file.chmod(0o600)
        token = token_file.read_text().strip()
        found["admin_token"] = token
    print(f"broker (dev): keyring {keyring_file}\nbroker (dev): admin token {token}", flush=True)
    return found
