"""Throwaway redis-server processes for tests: standalone, a 3-node Cluster, Sentinel.

Each server runs in the foreground as our own subprocess (never `--daemonize yes`), so a test
can SIGKILL, SIGSTOP or restart it and nothing outlives the test session.
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

REDIS_SERVER = "redis-server"
REDIS_CLI = "redis-cli"
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
"""Extra arguments for a server that writes and fsyncs every write to its append-only file
before it answers (deploy/compose.yaml runs Redis so): `start()` again after a SIGKILL
finds everything it acknowledged."""


def _die_with_parent() -> None:
    """Linux: SIGKILL the server if the test run dies without cleaning up (PR_SET_PDEATHSIG),
    so a crashed or interrupted run leaves no redis-server behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def require_binaries() -> None:
    missing = [b for b in (REDIS_SERVER, REDIS_CLI) if shutil.which(b) is None]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not found: the Redis tests need them (./dev installs them)"
        )


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(cluster_bus: bool = False) -> int:
    """A free port; for a cluster node also below 55536 with port + 10000 free (its bus)."""
    if not cluster_bus:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            return port
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


FixtureScope = Literal["session", "package", "module", "class", "function"]


def redis_server_fixture(scope: FixtureScope = "module") -> Any:
    """A pytest fixture yielding a started `RedisServer`, stopped at the end of `scope`:

    redis_server = redis_server_fixture()
    """

    def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
        require_binaries()
        server = RedisServer(tmp_path_factory.mktemp("redis"))
        server.start()
        try:
            yield server
        finally:
            server.stop()

    return pytest.fixture(scope=scope)(_server)


class RedisServer:
    """One redis-server on 127.0.0.1:`port`, data (if any) in `directory`."""

    def __init__(
        self, directory: Path, port: int | None = None, *extra: str, config: Path | None = None
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            REDIS_SERVER,
            *([str(self.config)] if self.config else []),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            args, cwd=self.directory, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited: see {self.log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything gracefully."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class RedisCluster:
    """Three primaries, no replicas: the smallest real cluster (slots split three ways)."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                free_port(True),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            )
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 20.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        while not all(self._ok(n.port) for n in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    @staticmethod
    def _ok(port: int) -> bool:
        out = subprocess.run(
            [REDIS_CLI, "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
        return "cluster_state:ok" in out

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Sentinel:
    """One sentinel (quorum 1) watching `master` under the service name `service`."""

    def __init__(self, directory: Path, master: RedisServer, service: str = "mymaster") -> None:
        self.service = service
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "sentinel.conf"  # a sentinel insists on a writable config file
        conf.write_text(
            f"sentinel monitor {service} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} 60000\n"
        )
        self.server = RedisServer(directory, None, "--sentinel", config=conf)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.server.port}/{self.service}/0"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
