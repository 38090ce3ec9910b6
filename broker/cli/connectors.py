"""`broker connectors list`: the catalog this configuration would serve, one line each."""

from __future__ import annotations

import argparse

from broker.config import load_settings
from broker.manifest import load_catalog


def add_connectors_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    connectors = sub.add_parser("connectors", help="the connector catalog").add_subparsers(
        metavar="ACTION"
    )
    connectors.add_parser("list", help="list loaded connectors").set_defaults(run=_connectors_list)


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
