"""`broker admin-token new | hash`: the lines of `BROKER_ADMIN_TOKEN_FILE`."""

from __future__ import annotations

import argparse
import sys

from broker.crypto.admin_tokens import hash_line, new_token
from broker.errors import ConfigError


def add_admin_token_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser("admin-token", help="admin tokens").add_subparsers(metavar="ACTION")
    tokens.add_parser(
        "new", help="print a new admin token and the line for BROKER_ADMIN_TOKEN_FILE"
    ).set_defaults(run=_admin_token_new)
    tokens.add_parser(
        "hash", help="read a token on stdin, print its BROKER_ADMIN_TOKEN_FILE line"
    ).set_defaults(run=_admin_token_hash)


def _admin_token_new(args: argparse.Namespace) -> int:
    token = new_token()
    print(f"token: {token}\nfile line: {hash_line(token)}")
    return 0


def _admin_token_hash(args: argparse.Namespace) -> int:
    token = sys.stdin.readline().strip()
    if len(token) < 16:
        raise ConfigError("an admin token needs at least 16 characters")
    print(hash_line(token))
    return 0
