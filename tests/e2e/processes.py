"""Brokers as real processes (`python -m broker.cli serve`), for tests across replicas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class BrokerProcess:
    def __init__(
        self,
        port: int,
        env: dict[str, str],
        log: Path,
        *,
        args: tuple[str, ...] = (),
        cwd: Path = ROOT,
    ) -> None:
        """`args` follow `serve` (`--dev`); `cwd` is where `--dev` keeps ./broker-data."""
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = env
        self.log = log
        self.args = args
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
        env.update(self.env)
        env.update({"BROKER_PORT": str(self.port), "PYTHONPATH": str(ROOT)})
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "broker.cli", "serve", *self.args],
                env=env,
                stdout=out,
                stderr=out,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"broker on {self.port} exited:\n{self.log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(
            f"broker on {self.port} did not become ready:\n{self.log.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lock release, exactly like a crashed replica."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def broker_cli(env: dict[str, str], *args: str) -> str:
    """Run `broker <args>` (e.g. `keys rewrap`) as an operator would; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout + result.stderr
