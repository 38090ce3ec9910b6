"""What the image promises, checked without building it: `broker serve` writes nothing outside
its volumes, so it runs with a read-only root filesystem.

The broker runs as in the image (PYTHONDONTWRITEBYTECODE, configuration only from BROKER_*
variables and a keyring file) inside a private mount namespace in which every filesystem is
read-only, except, for the SQLite store, its data directory (the volume). It serves, stores a
connection, flushes its audit, and stops on SIGTERM. Needs root (for the namespace); nothing
outside the namespace sees the read-only mounts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.crypto import Keyring, save_keyring
from tests.deploy.files import ROOT
from tests.helpers import ADMIN_TOKEN
from tests.store.redis_servers import RedisServer, free_port, redis_server_fixture

# mount the volume (if any) onto itself so it stays writable, then make every other
# read-write filesystem read-only, then become the broker
SCRIPT = """
set -e
if [ -n "$VOLUME" ]; then mount --bind "$VOLUME" "$VOLUME"; fi
for mountpoint in $READ_WRITE_MOUNTS; do mount -o remount,bind,ro "$mountpoint"; done
exec "$@"
"""


def _read_write_mounts() -> list[str]:
    """Read-write mount points other than the kernel's (/proc, /sys, /dev)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mountpoint, options = fields[4], fields[5].split(",")
        if "rw" not in options or "\\" in mountpoint:
            continue
        if mountpoint.split("/")[1] in ("proc", "sys", "dev", "run"):
            continue
        found.append(mountpoint)
    return found


def _namespace_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a mount namespace"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return f"cannot create a mount namespace here: {probe.stderr.decode().strip()}"
    return None


pytestmark = pytest.mark.skipif(
    _namespace_unavailable() is not None, reason=str(_namespace_unavailable())
)


class ReadOnlyBroker:
    def __init__(self, workdir: Path, store: str, volume: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "broker.log"
        keyring = workdir / "keyring.json"
        save_keyring(keyring, Keyring.generate("k1"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
        env |= {
            "BROKER_HOST": "127.0.0.1",
            "BROKER_PORT": str(self.port),
            "BROKER_STORE": store,
            "BROKER_KEYRING_FILE": str(keyring),
            "BROKER_ADMIN_TOKEN": ADMIN_TOKEN,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(ROOT),
            "VOLUME": str(volume or ""),
            "READ_WRITE_MOUNTS": " ".join(_read_write_mounts()),
        }
        namespace = ["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRIPT, "sh"]
        argv = [*namespace, sys.executable, "-m", "broker.cli", "serve"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the broker exited:\n{self.output()[-3000:]}")
            with contextlib.suppress(OSError):
                if self.call("GET", "/readyz")[0] == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"the broker did not become ready:\n{self.output()[-3000:]}")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"the broker ignored SIGTERM:\n{self.output()[-3000:]}") from None


@contextlib.contextmanager
def running(broker: ReadOnlyBroker) -> Iterator[ReadOnlyBroker]:
    try:
        broker.wait_ready()
        yield broker
    finally:
        code = broker.stop()
    assert code == 0, broker.output()[-3000:]


def exercise(broker: ReadOnlyBroker) -> None:
    """What writes if anything does: a stored connection, a read, an audit flush."""
    created = broker.call(
        "POST",
        "/v1/connections",
        {"tenant_id": "t1", "connector": "stripe", "settings": {"api_key": "sk_test_ro"}},
    )
    assert created[0] == 201, created
    assert broker.call("GET", f"/v1/connections/{created[1]['id']}")[0] == 200
    assert broker.call("GET", "/healthz") == (200, {"status": "ok"})
    time.sleep(1.5)  # the audit buffer is written once a second


redis_server = redis_server_fixture()


def test_with_redis_the_broker_writes_no_file(tmp_path: Path, redis_server: RedisServer) -> None:
    with running(ReadOnlyBroker(tmp_path, redis_server.url)) as broker:
        exercise(broker)
    assert "Read-only file system" not in broker.output()
    assert "Traceback" not in broker.output()


def test_with_sqlite_only_the_data_volume_is_written(tmp_path: Path) -> None:
    volume = tmp_path / "data"
    volume.mkdir()
    with running(ReadOnlyBroker(tmp_path, f"sqlite:///{volume}/broker.db", volume)) as broker:
        exercise(broker)
    assert "Traceback" not in broker.output()
    assert (volume / "broker.db").stat().st_size > 0


def test_with_sqlite_and_no_volume_the_broker_refuses_to_start(tmp_path: Path) -> None:
    broker = ReadOnlyBroker(tmp_path, f"sqlite:///{tmp_path}/data/broker.db")
    assert broker.proc.wait(timeout=20) != 0
    assert "Read-only file system" in broker.output()
