"""`broker` command line: serve, manifests, connectors, admin tokens, keys. A composition root.

Each command group registers its own subcommands (`add_*_commands`) beside the code that
runs them; this module only assembles the tree and turns broker errors into exit codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from broker.cli.admin_token import add_admin_token_commands
from broker.cli.connectors import add_connectors_commands
from broker.cli.keys import add_keys_commands
from broker.cli.manifest import add_manifest_commands
from broker.cli.serve import add_serve_command
from broker.errors import BrokerError, ConfigError


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
    add_serve_command(sub)
    add_manifest_commands(sub)
    add_connectors_commands(sub)
    add_admin_token_commands(sub)
    add_keys_commands(sub)
    return parser
