"""What the egress proxy benchmarks share: the fake provider, the connector listing it, and
one stack of processes (redis-server, provider, broker) with a connection and its runtime
token ready (bench/proxy.py, bench/proxy_instructions.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import ADMIN, call, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.2"

PROVIDER = """
import sys
from aiohttp import web
SMALL = b'{"object":"list","data":[{"id":"cus_A1","name":"Ada"},{"id":"cus_B2","name":"Bob"}]}'
CHUNK = b"x" * 262144
async def small(request):
    return web.Response(body=SMALL, content_type="application/json")
async def big(request):
    size = int(request.query["size"])
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = size
    await resp.prepare(request)
    sent = 0
    while sent < size:
        piece = CHUNK[: size - sent]
        await resp.write(piece)
        sent += len(piece)
    return resp
app = web.Application()
app.router.add_get("/v1/customers", small)
app.router.add_get("/big", big)
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    import asyncio
    loop = asyncio.new_event_loop()
web.run_app(app, host=sys.argv[1], port=int(sys.argv[2]), print=None, access_log=None, loop=loop)
"""


def manifest(port: int) -> dict[str, object]:
    return {
        "key": "bench-proxy",
        "name": "bench-proxy",
        "provider": "bench",
        "kind": "source",
        "version": "1.0.0",
        "permissions": {"http": [f"http://{HOST}:{port}/*"]},
        "connection": {
            "settingsSchema": {
                "type": "object",
                "properties": {"api_key": {"type": "string", "x-secret": True}},
            },
            "httpAuth": {"type": "bearer", "secret": "api_key"},
        },
    }


@dataclass
class Stack:
    broker: str
    """The broker's base URL."""
    provider: str
    """The provider's base URL."""
    proxied: str
    """The provider's base URL through the proxy's path form."""
    token: str
    """A runtime token of an API-key connection whose connector lists the provider."""
    broker_pid: int
    provider_pid: int


@contextlib.contextmanager
def proxy_stack(
    root: Path = ROOT, *, wrapper: Sequence[str] = (), ready_within: float = 30
) -> Iterator[Stack]:
    """The processes, started and stopped around the block; the broker from the checkout
    `root`, under `wrapper` if one is given (valgrind), its background loops off: their
    polls would land in a count as noise."""
    redis_port, provider_port, broker_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "connectors" / "bench-proxy").mkdir(parents=True)
        (work / "connectors" / "bench-proxy" / "manifest.json").write_text(
            json.dumps(manifest(provider_port))
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BROKER_")},
            "PYTHONPATH": str(root),
        }
        keyring = work / "keyring.json"
        generate = [sys.executable, "-m", "broker.cli", "keys", "generate", "--out", str(keyring)]
        subprocess.run(generate, check=True, cwd=root, env=env, capture_output=True)
        env |= {
            "BROKER_STORE": f"redis://127.0.0.1:{redis_port}/0",
            "BROKER_KEYRING_FILE": str(keyring),
            "BROKER_ADMIN_TOKEN": ADMIN,
            "BROKER_PUBLIC_URL": "http://127.0.0.1:8080",
            "BROKER_CONNECTORS_DIRS": str(work / "connectors"),
            "BROKER_PORT": str(broker_port),
            "BROKER_LOG_LEVEL": "WARNING",
            "BROKER_REFRESHER": "false",
            "BROKER_EVENTS_WORKER": "false",
            "PYTHONHASHSEED": "0",
        }
        redis = ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"]
        quiet = subprocess.DEVNULL
        try:
            procs.append(subprocess.Popen(redis, stdout=quiet, stderr=quiet))
            procs.append(
                subprocess.Popen([sys.executable, "-c", PROVIDER, HOST, str(provider_port)])
            )
            serve = [*wrapper, sys.executable, "-m", "broker.cli", "serve"]
            procs.append(subprocess.Popen(serve, env=env, cwd=root, stdout=quiet, stderr=quiet))
            broker = f"http://127.0.0.1:{broker_port}"
            provider = f"http://{HOST}:{provider_port}"
            wait_http(f"{broker}/readyz", ready_within)
            wait_http(f"{provider}/v1/customers")
            body = {"tenant_id": "t", "connector": "bench-proxy", "settings": {"api_key": "sk_b"}}
            conn = call("POST", f"{broker}/v1/connections", body)
            token = call("POST", f"{broker}/v1/runtime-tokens", {"connection_id": conn["id"]})
            yield Stack(
                broker,
                provider,
                f"{broker}/v1/runtime/proxy/http/{HOST}:{provider_port}",
                token["token"],
                procs[2].pid,
                procs[1].pid,
            )
        finally:
            for proc in reversed(procs):
                proc.send_signal(2)  # SIGINT: a broker under callgrind writes its counts
            for proc in reversed(procs):
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
