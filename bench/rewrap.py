"""Rewrap throughput (the engine behind `broker keys rewrap`) on Redis and SQLite, beside its floor.

    .venv/bin/python bench/rewrap.py [--records 100000] [--small 25000] [--batch 500] [--repeat 3]

For each backend, `--records` connection-sized records (about 1 KB sealed) are written sealed
under key `k-old`; the keyring then gets `k-new` as its primary, and a child process does what
`broker keys rewrap` does: a counting pass, then the rewrap. The parent reads the child's peak
RSS with os.wait4. The same is done with `--small` records, to show memory does not grow with
the record count. Figures are medians of `--repeat` runs (the store is refilled each time).

The floor, measured in the same run over values of the same size:
- AES-GCM: the broker's own `open_sealed` (k-old) + `seal` (k-new) in a plain loop;
- raw write: redis-py `HSET v n` in non-transactional pipelines of `--batch` (Redis), or
  sqlite3 `executemany(INSERT OR REPLACE)` in one transaction per `--batch` with the store's
  pragmas (WAL, synchronous=FULL);
- floor = both costs per record added (one thread does both, as the rewrap does).

Starts its own redis-server on a free port and works in a temporary directory; both are
removed at the end (the server also dies with this process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.store.redis_servers when run as a script

from redis.asyncio import Redis  # noqa: E402

from broker.crypto import Keyring, open_sealed, save_keyring, seal  # noqa: E402
from broker.store import keys, open_store  # noqa: E402
from broker.store.base import Store  # noqa: E402
from tests.store.redis_servers import RedisServer, require_binaries  # noqa: E402

OLD = Keyring.generate("k-old")
NEW = OLD.with_key("k-new").promoted("k-new")
CHUNK = 1000


def plaintext(i: int) -> bytes:
    """About the size of a real connection record with an OAuth token set."""
    doc = {
        "id": f"conn_{i:026d}",
        "tenant_id": f"tenant-{i % 997}",
        "connector": "github",
        "status": "active",
        "settings": {"org": "acme", "region": "eu"},
        "secret_settings": {},
        "token": {
            "access_token": secrets.token_urlsafe(60),
            "refresh_token": secrets.token_urlsafe(60),
            "token_type": "Bearer",
            "expires_at": 1_900_000_000.0 + i,
            "scopes": ["repo", "read:org", "user:email"],
            "obtained_at": 1_800_000_000.0,
        },
        "refresh": {"last_refresh_at": 1_800_000_000.0, "failures": 0},
        "settings_history": [{"version": 1, "changed_at": 1_800_000_000.0}],
        "created_at": 1_800_000_000.0,
        "updated_at": 1_800_000_000.0,
    }
    return json.dumps(doc).encode()


def chunks(count: int) -> Iterator[list[tuple[str, bytes]]]:
    """(store key, value sealed under k-old), CHUNK at a time: the parent never holds all."""
    for start in range(0, count, CHUNK):
        part = []
        for i in range(start, min(count, start + CHUNK)):
            key = keys.connection(f"conn_{i:026d}")
            part.append((key, seal(OLD, plaintext(i), key.encode())))
        yield part


# --- the measured child: count + rewrap, as the CLI does --------------------------------------


async def child(url: str, keyring_file: str, batch: int) -> None:
    from broker.services.rotation import rewrap
    from broker.store.rewrap import count_by_key
    from broker.store.sealed import SealedStore

    keyring = Keyring.load(keyring_file)
    store = SealedStore(await open_store(url), lambda: keyring)
    try:
        started = time.perf_counter()
        counts = await count_by_key(store, batch)
        counted = time.perf_counter()
        summary = await rewrap(store, batch=batch, total=counts.total())
        done = time.perf_counter()
    finally:
        await store.close()
    print(
        json.dumps(
            {
                "count_s": counted - started,
                "rewrap_s": done - counted,
                "rewrapped": summary.rewrapped,
                "failed": summary.failed.total(),
            }
        )
    )


def run_child(url: str, keyring_file: Path, batch: int) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", url, str(keyring_file), str(batch)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    # wait4, not wait: it returns this child's own resource usage (ru_maxrss is in KiB)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"rewrap child failed with {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    result["rss_mb"] = usage.ru_maxrss / 1024
    return result


# --- fill and floors --------------------------------------------------------------------------


async def fill(url: str, count: int) -> None:
    store: Store = await open_store(url)
    try:
        for part in chunks(count):
            await store.put_many([(k, v, None) for k, v in part])
    finally:
        await store.close()


def crypto_floor(count: int) -> float:
    spent = 0.0
    for part in chunks(count):
        started = time.perf_counter()
        for key, value in part:
            aad = key.encode()
            seal(NEW, open_sealed(NEW, value, aad), aad)
        spent += time.perf_counter() - started
    return count / spent


async def redis_floor(port: int, count: int, batch: int) -> tuple[float, float]:
    """(write, read) records/s: HSET v n, then HMGET v n, in pipelines of `batch`."""
    client = Redis.from_url(f"redis://127.0.0.1:{port}/15")
    wrote = read = 0.0
    try:
        for part in chunks(count):
            started = time.perf_counter()
            for start in range(0, len(part), batch):
                pipe = client.pipeline(transaction=False)
                for key, value in part[start : start + batch]:
                    pipe.hset(f"floor:{key}", mapping={"v": value, "n": 2})
                await pipe.execute()
            wrote += time.perf_counter() - started
            started = time.perf_counter()
            for start in range(0, len(part), batch):
                pipe = client.pipeline(transaction=False)
                for key, _ in part[start : start + batch]:
                    pipe.hmget(f"floor:{key}", ["v", "n"])
                await pipe.execute()
            read += time.perf_counter() - started
        await client.flushdb()
    finally:
        await client.aclose()
    return count / wrote, count / read


def sqlite_floor(path: Path, count: int, batch: int) -> tuple[float, float]:
    """(write, read) records/s: executemany INSERT OR REPLACE, one transaction per `batch`;
    then key-range pages of `batch` rows, as the store's scan reads them."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL, "
        "expires_at REAL) WITHOUT ROWID"
    )
    wrote = 0.0
    try:
        for part in chunks(count):
            started = time.perf_counter()
            for start in range(0, len(part), batch):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO kv VALUES (?, ?, 2, NULL)", part[start : start + batch]
                )
                conn.execute("COMMIT")
            wrote += time.perf_counter() - started
        started = time.perf_counter()
        last, rows = "", 0
        while True:
            page = conn.execute(
                "SELECT key, value, version FROM kv WHERE key > ? ORDER BY key LIMIT ?",
                (last, batch),
            ).fetchall()
            if not page:
                break
            rows += len(page)
            last = page[-1][0]
        read = time.perf_counter() - started
        if rows != count:
            raise RuntimeError(f"sqlite floor read {rows} rows of {count}")
    finally:
        conn.close()
    return count / wrote, count / read


# --- driver -------------------------------------------------------------------------------------


async def wipe(url: str, path: Path | None) -> None:
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@dataclass
class Measured:
    backend: str
    by_count: dict[int, dict[str, float]] = field(default_factory=dict)
    """records -> median count_s, rewrap_s and the highest peak RSS (MB) over the runs."""


async def measure(
    name: str, url: str, path: Path | None, args: argparse.Namespace, keyring_file: Path
) -> Measured:
    measured = Measured(name)
    for count, repeat in ((args.small, 1), (args.records, args.repeat)):
        runs = []
        for _ in range(repeat):
            await wipe(url, path)
            await fill(url, count)
            runs.append(run_child(url, keyring_file, args.batch))
            if runs[-1]["rewrapped"] != count or runs[-1]["failed"]:
                raise RuntimeError(f"{name}: rewrap did not reseal every record: {runs[-1]}")
        measured.by_count[count] = {
            key: statistics.median(r[key] for r in runs) for key in ("count_s", "rewrap_s")
        } | {"rss_mb": max(r["rss_mb"] for r in runs)}
    await wipe(url, path)
    return measured


def table(results: list[Measured], floors: dict[str, dict[str, float]], n: int, small: int) -> str:
    lines = [
        f"| backend | rewrap records/s | count pass s | count + rewrap records/s "
        f"| AES-GCM open+seal /s | raw pipelined write /s | floor (crypto + write) /s "
        f"| rewrap / floor | raw read /s | floor with read /s | rewrap / floor with read "
        f"| peak RSS {small:,} | peak RSS {n:,} |",
        "|---|" + "--:|" * 12,
    ]
    for row in results:
        big, little, floor = row.by_count[n], row.by_count[small], floors[row.backend]
        rate = n / big["rewrap_s"]
        combined = 1 / (1 / floor["crypto"] + 1 / floor["write"])
        with_read = 1 / (1 / combined + 1 / floor["read"])
        lines.append(
            f"| {row.backend} | {rate:,.0f} | {big['count_s']:.2f} "
            f"| {n / (big['count_s'] + big['rewrap_s']):,.0f} | {floor['crypto']:,.0f} "
            f"| {floor['write']:,.0f} | {combined:,.0f} | {rate / combined:.2f} "
            f"| {floor['read']:,.0f} | {with_read:,.0f} | {rate / with_read:.2f} "
            f"| {little['rss_mb']:.1f} MB | {big['rss_mb']:.1f} MB |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    require_binaries()
    with tempfile.TemporaryDirectory(prefix="bench-rewrap-") as tmp:
        work = Path(tmp)
        keyring_file = work / "keyring.json"
        save_keyring(keyring_file, NEW)
        server = RedisServer(work / "redis")
        server.start()
        try:
            redis_url = f"redis://127.0.0.1:{server.port}/0"
            db = work / "broker.db"
            results = [
                await measure("redis", redis_url, None, args, keyring_file),
                await measure("sqlite", f"sqlite:///{db}", db, args, keyring_file),
            ]
            crypto = crypto_floor(args.records)
            redis_io = await redis_floor(server.port, args.records, args.batch)
            sqlite_io = sqlite_floor(work / "floor.db", args.records, args.batch)
            floors = {
                name: {"crypto": crypto, "write": write, "read": read}
                for name, (write, read) in (("redis", redis_io), ("sqlite", sqlite_io))
            }
        finally:
            server.stop()
    load = os.getloadavg()[0]
    print(
        f"nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{args.records:,} records, batch {args.batch}, median of {args.repeat}, "
        f"load average {load:.2f}\n"
    )
    print(table(results, floors, args.records, args.small))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=25_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("URL", "KEYRING", "BATCH"), help="internal")
    return parser.parse_args()


if __name__ == "__main__":
    options = parse()
    if options.child:
        url, keyring_file, batch = options.child
        asyncio.run(child(url, keyring_file, int(batch)))
    else:
        asyncio.run(main(options))
