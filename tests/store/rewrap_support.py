"""What the rewrap tests share: the keyrings before and after `keys add` + `keys promote`,
records sealed under the old one, the key ids found in a store, and `broker keys` run as a
child process (tests/store/test_rewrap.py, tests/services/test_rotation.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from broker.crypto import Keyring, key_id_of
from broker.store import keys
from broker.store.base import Store
from broker.store.sealed import SealedStore

ROOT = Path(__file__).resolve().parents[2]
OLD = Keyring.generate("k-old")
BOTH = OLD.with_key("k-new").promoted("k-new")  # after `keys add` + `keys promote`
EVENT_KEYS = ("{evt_", "{events_")


def sealed(store: Store, keyring: Keyring) -> SealedStore:
    return SealedStore(store, lambda: keyring)


def record(i: int) -> bytes:
    return json.dumps({"i": i, "n": 0, "token": f"secret-{i:06d}" + "x" * 200}).encode()


async def fill(store: SealedStore, count: int, chunk: int = 1000) -> list[str]:
    names = [keys.connection(f"conn_{i:06d}") for i in range(count)]
    for start in range(0, count, chunk):
        part = range(start, min(count, start + chunk))
        await store.put_many([(names[i], record(i), 0) for i in part])
    return names


async def key_ids(store: Store) -> Counter[str]:
    """Key ids of the test's records (not the event a finished rewrap writes about itself)."""
    counts: Counter[str] = Counter()
    cursor: str | None = None
    while True:
        page = await store.scan("{", cursor)
        counts.update(key_id_of(e.value) for e in page.entries if not e.key.startswith(EVENT_KEYS))
        cursor = page.cursor
        if cursor is None:
            return counts


def cli(store_url: str, keyring_file: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(BROKER_STORE=store_url, BROKER_KEYRING_FILE=str(keyring_file), PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "broker.cli", "keys", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli_run(store_url: str, keyring_file: Path, *args: str) -> tuple[int, str, str]:
    proc = cli(store_url, keyring_file, *args)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err
