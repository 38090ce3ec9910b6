"""`broker keys ...`: the operator's side of the keyring lifecycle (DESIGN section 4):
generate, add, promote, rewrap, status, retire.

Every command that changes the keyring rewrites the file atomically; a running broker picks
the change up on SIGHUP. Key material is only ever printed by `generate`, which writes a
fresh keyring meant for a file. The rewrap itself is `broker.store.rewrap`, run with
progress reports by `broker.services.rotation`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from broker import metrics
from broker.config import load_settings
from broker.crypto import Keyring, save_keyring
from broker.errors import ConfigError
from broker.services.rotation import Progress, ProgressCallback, rewrap
from broker.store.rewrap import DEFAULT_BATCH, RewrapSummary, count_by_key
from broker.store.sealed import SealedStore

T = TypeVar("T")


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

    rewrap_cmd = keys.add_parser(
        "rewrap",
        help="reseal every record not under the primary key (online, resumable)",
        description="Reseal every record not under the primary key while brokers serve. "
        "Safe to interrupt and run again: records already under the primary are skipped.",
    )
    rewrap_cmd.add_argument("--dry-run", action="store_true", help="count only, write nothing")
    rewrap_cmd.add_argument(
        "--batch", type=_positive, default=DEFAULT_BATCH, help="records per round trip"
    )
    rewrap_cmd.add_argument(
        "--progress-every",
        type=float,
        metavar="SECONDS",
        help="seconds between progress lines (default 0.2 on a terminal, else 2)",
    )
    rewrap_cmd.add_argument(
        "--metrics-file",
        type=Path,
        metavar="FILE",
        help="also write the progress to FILE as Prometheus text, replaced atomically at every "
        "report (for node_exporter's textfile collector)",
    )
    rewrap_cmd.set_defaults(run=_rewrap)

    retire = keys.add_parser(
        "retire", help="remove a key; refuses while any record is still sealed under it"
    )
    retire.add_argument("key_id")
    retire.set_defaults(run=_retire)

    for parser in (add, promote, status, rewrap_cmd, retire):
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
    counts = _with_store(keyring, count_by_key)
    print(f"{'KEY ID':<24} {'PRIMARY':<8} {'RECORDS':>8}")
    for key_id in keyring.ids:
        mark = "yes" if key_id == keyring.primary else ""
        print(f"{key_id:<24} {mark:<8} {counts.pop(key_id, 0):>8}")
    for key_id, count in sorted(counts.items()):
        print(f"{key_id:<24} {'MISSING':<8} {count:>8}")
    return 1 if counts else 0


def _retire(args: argparse.Namespace) -> int:
    path = _keyring_file(args)
    keyring = Keyring.load(path)
    key_id: str = args.key_id
    if key_id == keyring.primary:
        raise ConfigError(f"cannot retire {key_id!r}: it is the primary key (promote another)")
    if key_id not in keyring:
        raise ConfigError(f"cannot retire {key_id!r}: no such key in {path}")
    still = _with_store(keyring, count_by_key)[key_id]
    if still:
        print(
            f"broker: refusing to retire {key_id}: {still} record(s) are still sealed under it; "
            "run `broker keys rewrap` first",
            file=sys.stderr,
        )
        return 1
    save_keyring(path, keyring.without(key_id))
    print(f"retired {key_id} from {path}; reload brokers with SIGHUP")
    return 0


def _rewrap(args: argparse.Namespace) -> int:
    keyring = Keyring.load(_keyring_file(args))
    interactive = sys.stderr.isatty()
    every = args.progress_every or (0.2 if interactive else 2.0)
    show = _progress_line(interactive, args.metrics_file)

    async def run(store: SealedStore) -> RewrapSummary | None:
        print("rewrap: counting records...", file=sys.stderr, flush=True)
        counts = await count_by_key(store, args.batch)
        total = sum(counts.values())
        pending = total - counts[keyring.primary]
        print(
            f"rewrap: {total:,} records, {pending:,} not under the primary {keyring.primary}",
            file=sys.stderr,
            flush=True,
        )
        if not pending:
            return None
        summary = await rewrap(
            store,
            batch=args.batch,
            dry_run=args.dry_run,
            total=total,
            on_progress=show,
            progress_every=every,
        )
        if summary.ok and not summary.dry_run:
            await _announce(store, summary)
        return summary

    try:
        summary = _with_store(keyring, run)
    except KeyboardInterrupt:
        print(
            "\nbroker: rewrap interrupted; what it resealed stays resealed: "
            "run `broker keys rewrap` again to finish",
            file=sys.stderr,
        )
        return 130
    finally:
        if args.metrics_file is not None:
            metrics.write_rewrap(str(args.metrics_file))  # as it ended: not running
    if interactive:
        print(file=sys.stderr)
    if summary is None:
        print(f"nothing to rewrap: every record is under the primary {keyring.primary}")
        return 0
    _print_summary(summary)
    return 0 if summary.ok else 1


async def _announce(store: SealedStore, summary: RewrapSummary) -> None:
    """`keys.rewrap_completed` for the platform: counts and key ids, nothing more."""
    # imported here, like `serve`'s server: the other commands start without loading aiohttp
    from broker.services import events

    await events.announce(
        store,
        load_settings(),
        "keys.rewrap_completed",
        {
            "primary": summary.primary,
            "rewrapped": summary.rewrapped,
            "scanned": summary.scanned,
        },
    )


def _progress_line(interactive: bool, metrics_file: Path | None) -> ProgressCallback:
    def show(p: Progress) -> None:
        if metrics_file is not None:
            metrics.write_rewrap(str(metrics_file))
        percent = p.done * 100 // p.total if p.total else 100
        eta = "-" if p.eta is None else f"{p.eta:.0f}s"
        line = (
            f"rewrap: {p.done:,}/{p.total:,} records ({percent}%), "
            f"{p.rate:,.0f} records/s, ETA {eta}"
        )
        # on a terminal redraw one line; in a log, one line per report
        sys.stderr.write(f"\r{line:<78}" if interactive else line + "\n")
        sys.stderr.flush()

    return show


def _print_summary(s: RewrapSummary) -> None:
    what = "would rewrap" if s.dry_run else "rewrapped"
    print(
        f"rewrap {'dry run ' if s.dry_run else ''}finished in {s.elapsed:.1f}s "
        f"(primary {s.primary}): {s.scanned:,} scanned, {s.rewrapped:,} {what}, "
        f"{s.skipped:,} skipped (already primary), {s.vanished:,} vanished, "
        f"{s.conflicts:,} conflicts retried, {sum(s.failed.values()):,} failed"
    )
    for reason, count in sorted(s.failed.items()):
        examples = ", ".join(s.examples.get(reason, []))
        print(f"  failed: {reason}: {count:,} (e.g. {examples})")
    if s.failed:
        print("records that failed were left as they are; fix the cause and run rewrap again")


def _with_store(keyring: Keyring, work: Callable[[SealedStore], Awaitable[T]]) -> T:
    """Run `work` on the configured store (BROKER_STORE), sealed with `keyring` as it is now."""
    from broker.store import open_store

    async def main() -> T:
        store = SealedStore(await open_store(load_settings().store), lambda: keyring)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
