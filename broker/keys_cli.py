"""`broker keys ...`: the operator's side of the keyring lifecycle (add, promote, status).

Every command that changes the keyring rewrites the file atomically; a running broker picks
the change up on SIGHUP. Key material is only ever printed by `generate`, which writes a
fresh keyring meant for a file.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from pathlib import Path

from broker.config import load_settings
from broker.crypto import Keyring, key_id_of, save_keyring
from broker.errors import ConfigError, CryptoError

ALL_RECORDS = "{"  # every store key starts with a hash tag (broker.store.keys)


def add_keys_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="encryption keys").add_subparsers(metavar="ACTION")

    generate = keys.add_parser("generate", help="print a fresh keyring (JSON) or write it to --out")
    generate.add_argument("--id", help="key id (default k-<date>-<random>)")
    generate.add_argument(
        "--out", type=Path, help="write to this file (mode 0600) instead of stdout"
    )
    generate.set_defaults(run=_generate)

    add = keys.add_parser("add", help="add a new key (not yet primary)")
    add.add_argument("--id", help="key id (default k-<date>-<random>)")
    add.set_defaults(run=_add)

    promote = keys.add_parser("promote", help="make a key the primary (new writes use it)")
    promote.add_argument("key_id")
    promote.set_defaults(run=_promote)

    status = keys.add_parser("status", help="the keyring and how many records each key seals")
    status.set_defaults(run=_status)

    for parser in (add, promote, status):
        parser.add_argument("--file", type=Path, help="keyring file (default BROKER_KEYRING_FILE)")


def _keyring_file(args: argparse.Namespace) -> Path:
    path: Path | None = args.file or load_settings().keyring_file
    if path is None:
        raise ConfigError("no keyring file: pass --file or set BROKER_KEYRING_FILE")
    return path


def _generate(args: argparse.Namespace) -> int:
    keyring = Keyring.generate(args.id)
    if args.out is None:
        print(keyring.to_json())
        return 0
    if args.out.exists():
        raise ConfigError(f"{args.out} exists; refusing to overwrite a keyring")
    save_keyring(args.out, keyring)
    print(f"wrote keyring {args.out} with primary key {keyring.primary}")
    return 0


def _add(args: argparse.Namespace) -> int:
    path = _keyring_file(args)
    keyring = Keyring.load(path)
    fresh = Keyring.generate(args.id)
    save_keyring(path, keyring.with_key(fresh.primary, fresh.primary_key))
    print(f"added key {fresh.primary} to {path} (primary is still {keyring.primary})")
    return 0


def _promote(args: argparse.Namespace) -> int:
    path = _keyring_file(args)
    keyring = Keyring.load(path)
    save_keyring(path, keyring.promoted(args.key_id))
    print(f"{args.key_id} is now the primary key of {path}; reload brokers with SIGHUP")
    return 0


def _status(args: argparse.Namespace) -> int:
    keyring = Keyring.load(_keyring_file(args))
    counts = asyncio.run(_count_by_key(load_settings().store))
    print(f"{'KEY ID':<24} {'PRIMARY':<8} {'RECORDS':>8}")
    for key_id in keyring.ids:
        mark = "yes" if key_id == keyring.primary else ""
        print(f"{key_id:<24} {mark:<8} {counts.pop(key_id, 0):>8}")
    for key_id, count in sorted(counts.items()):
        print(f"{key_id:<24} {'MISSING':<8} {count:>8}")
    return 1 if counts else 0


async def _count_by_key(store_url: str) -> Counter[str]:
    from broker.store import open_store

    store = await open_store(store_url)
    counts: Counter[str] = Counter()
    try:
        cursor: str | None = None
        while True:
            page = await store.scan(ALL_RECORDS, cursor)
            for entry in page.entries:
                try:
                    counts[key_id_of(entry.value)] += 1
                except CryptoError:
                    counts["(unsealed)"] += 1
            cursor = page.cursor
            if cursor is None:
                return counts
    finally:
        await store.close()
