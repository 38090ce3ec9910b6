"""`broker` command line: serve, manifests, connectors, keys. A composition root."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.config import Settings, load_settings
from broker.errors import BrokerError, ConfigError, ManifestError
from broker.manifest import load_catalog, load_manifest, manifest_paths

DEV_DIR = Path("broker-data")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
        return result
    except ConfigError as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 2
    except BrokerError as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="broker", description="OAuth and credentials broker")
    sub = parser.add_subparsers(metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="listen address (BROKER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (BROKER_PORT, default 8080)")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="first run: make a local keyring and admin token under ./broker-data",
    )
    serve.set_defaults(run=_serve)

    manifest = sub.add_parser("manifest", help="connector manifests").add_subparsers(
        metavar="ACTION"
    )
    validate = manifest.add_parser("validate", help="validate manifest files or folders")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    validate.set_defaults(run=_manifest_validate)

    connectors = sub.add_parser("connectors", help="the connector catalog").add_subparsers(
        metavar="ACTION"
    )
    connectors.add_parser("list", help="list loaded connectors").set_defaults(run=_connectors_list)

    tokens = sub.add_parser("admin-token", help="admin tokens").add_subparsers(metavar="ACTION")
    tokens.add_parser(
        "new", help="print a new admin token and the line for BROKER_ADMIN_TOKEN_FILE"
    ).set_defaults(run=_admin_token_new)
    tokens.add_parser(
        "hash", help="read a token on stdin, print its BROKER_ADMIN_TOKEN_FILE line"
    ).set_defaults(run=_admin_token_hash)

    from broker.keys_cli import add_keys_commands

    add_keys_commands(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        k: v for k in ("host", "port") if (v := getattr(args, k)) is not None
    }
    if args.dev:
        overrides.update(_dev_credentials(load_settings(**overrides)))
        overrides["dev"] = True
    settings = load_settings(**overrides)
    settings.require_runnable()

    from aiohttp import web

    from broker.web.access_log import AccessLogger
    from broker.web.app import create_app
    from broker.web.state import CATALOG

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(settings)
    print(
        f"broker: serving {len(app[CATALOG])} connectors on "
        f"http://{settings.host}:{settings.port} (store {_store_label(settings)})",
        flush=True,
    )
    # Everything built so far (catalog, models, modules) lives as long as the process: keep
    # it out of the cyclic collector's way, which otherwise rescans it on every full pass.
    gc.collect()
    gc.freeze()
    web.run_app(
        app,
        loop=_event_loop(),
        host=settings.host,
        port=settings.port,
        access_log_class=AccessLogger,
        print=None,
        handle_signals=True,
    )
    return 0


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it roughly halves the per-request socket cost)."""
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
    from broker.crypto import Keyring, save_keyring

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


def _admin_token_new(args: argparse.Namespace) -> int:
    from broker.crypto.admin_tokens import hash_line, new_token

    token = new_token()
    print(f"token: {token}\nfile line: {hash_line(token)}")
    return 0


def _admin_token_hash(args: argparse.Namespace) -> int:
    from broker.crypto.admin_tokens import hash_line

    token = sys.stdin.readline().strip()
    if len(token) < 16:
        raise ConfigError("an admin token needs at least 16 characters")
    print(hash_line(token))
    return 0


def _manifest_validate(args: argparse.Namespace) -> int:
    files: list[Path] = []
    bad = 0
    for path in args.paths:
        if path.is_dir():
            found = (
                [path / "manifest.json"]
                if (path / "manifest.json").is_file()
                else manifest_paths(path)
            )
            if not found:
                print(f"{path}: no manifest.json found", file=sys.stderr)
                bad += 1
            files.extend(found)
        else:
            files.append(path)
    for file in files:
        try:
            load_manifest(file)
        except ManifestError as exc:
            bad += 1
            for problem in exc.problems:
                print(f"{file}: {problem}")
    print(f"{len(files) - bad} of {len(files)} manifests valid", file=sys.stderr)
    return 1 if bad else 0


def _connectors_list(args: argparse.Namespace) -> int:
    settings = load_settings()
    catalog = load_catalog(settings.connectors_dirs)
    rows = [(m.key, m.auth_mode, m.kind, m.name, str(catalog.sources[m.key])) for m in catalog]
    widths = [
        max(len(r[i]) for r in [*rows, ("KEY", "AUTH", "KIND", "NAME", "SOURCE")]) for i in range(5)
    ]
    for row in [("KEY", "AUTH", "KIND", "NAME", "SOURCE"), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
