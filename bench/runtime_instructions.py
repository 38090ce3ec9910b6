"""Instructions per runtime read, counted by callgrind: deterministic where wrk is not.

    .venv/bin/python bench/runtime_instructions.py [--reads 2000] [--root PATH] [--repeat 2]

Starts a redis-server on a free port, a fake token endpoint, and a broker process under
`valgrind --tool=callgrind --instr-atstart=no` (the background refresher and event worker
off: their polls would count by the wall-clock second, not by the read), makes an API-key
and a client-credentials connection, warms up, then turns counting on
(`callgrind_control -i on`) for `--reads` secret reads and as many access-token reads
(a valid token: no provider call) over 8 kept-alive connections, and off again. Prints the
instructions per read of each kind. `--root` runs the broker from another checkout (an
A/B of two commits: `git archive COMMIT | tar -x -C /tmp/before`); the run-to-run spread
of one build is a few hundred instructions per read.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from common import ADMIN, call, client_credentials_manifest, free_port, wait_http
from runtime_api import token_endpoint

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 8
KINDS = (("secret read", "secrets/api_key"), ("access-token read", "oauth/access-token"))


def setup(base: str) -> tuple[str, str]:
    """Runtime tokens of an API-key connection and of a client-credentials one."""
    body = {"tenant_id": "bench", "connector": "stripe", "settings": {"api_key": "sk_bench"}}
    api_key = call("POST", f"{base}/v1/connections", body)
    call("PUT", f"{base}/v1/oauth-apps/bench_cc", {"client_id": "c", "client_secret": "s"})
    body = {"tenant_id": "bench", "connector": "bench-cc", "settings": {}}
    oauth = call("POST", f"{base}/v1/connections", body)
    secret, token = (
        call("POST", f"{base}/v1/runtime-tokens", {"connection_id": c["id"]})["token"]
        for c in (api_key, oauth)
    )
    return secret, token


async def reads(url: str, token: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        slots = asyncio.Semaphore(CONNECTIONS)

        async def one() -> None:
            async with slots, session.get(url) as resp:
                assert resp.status == 200, resp.status
                await resp.read()

        await asyncio.gather(*(one() for _ in range(count)))


def counted(out_file: Path) -> int:
    text = out_file.read_text()
    # `summary` counts from the start, which `--instr-atstart=no` leaves out
    found = re.search(r"^totals:\s+(\d+)", text, re.M)
    assert found, "no totals in the callgrind output"
    return int(found.group(1))


async def one_run(root: Path, count: int, tmp: Path) -> dict[str, float]:
    redis_port, token_port, broker_port = free_port(), free_port(), free_port()
    runner = await token_endpoint(token_port)
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    token_url = f"http://127.0.0.1:{token_port}/token"
    (tmp / "connectors" / "bench-cc").mkdir(parents=True, exist_ok=True)
    cc = client_credentials_manifest("bench-cc", token_url, "bench_cc")
    (tmp / "connectors" / "bench-cc" / "manifest.json").write_text(json.dumps(cc))
    keyring = tmp / "keyring.json"
    keyring.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "broker.cli", "keys", "generate", "--out", str(keyring)],
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BROKER_")},
        "BROKER_STORE": f"redis://127.0.0.1:{redis_port}/0",
        "BROKER_KEYRING_FILE": str(keyring),
        "BROKER_ADMIN_TOKEN": ADMIN,
        "BROKER_PORT": str(broker_port),
        "BROKER_CONNECTORS_DIRS": str(tmp / "connectors"),
        "BROKER_REFRESHER": "false",
        "BROKER_EVENTS_WORKER": "false",
        "PYTHONPATH": str(root),
        "PYTHONHASHSEED": "0",
    }
    results: dict[str, float] = {}
    for name, path in (
        ("secret read", "secrets/api_key"),
        ("access-token read", "oauth/access-token"),
    ):
        out_file = tmp / f"callgrind.{name.split()[0]}.out"
        broker = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out_file}",
                sys.executable,
                "-m",
                "broker.cli",
                "serve",
            ],
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{broker_port}"
            await asyncio.to_thread(wait_http, f"{base}/readyz", 300)
            tokens = await asyncio.to_thread(setup, base)
            token = tokens[0] if name == "secret read" else tokens[1]
            url = f"{base}/v1/runtime/{path}"
            await reads(url, token, 200)  # warm-up: caches, grants, code paths
            control = ["callgrind_control", "-i"]
            subprocess.run([*control, "on", str(broker.pid)], check=True, capture_output=True)
            await reads(url, token, count)
            subprocess.run([*control, "off", str(broker.pid)], check=True, capture_output=True)
        finally:
            broker.send_signal(signal.SIGINT)
            broker.wait(120)
        results[name] = counted(out_file) / count
        redis_flush = ["redis-cli", "-p", str(redis_port), "flushall"]
        subprocess.run(redis_flush, check=True, capture_output=True)
    redis.terminate()
    redis.wait(10)
    await runner.cleanup()
    return results


async def table(
    title: str,
    columns: dict[str, str],
    one_run: Callable[[Path], Awaitable[dict[str, float]]],
    repeat: int,
) -> None:
    """`repeat` runs of `one_run` (given a scratch directory), one markdown row each: the
    figures it returns under `columns`' keys, headed by their titles."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-instr-"))
    try:
        print(title)
        print(f"\n| run | {' | '.join(columns.values())} |")
        print("|--:|" + "--:|" * len(columns))
        for n in range(1, repeat + 1):
            r = await one_run(tmp)
            print(f"| {n} | " + " | ".join(f"{r[k]:,.0f}" for k in columns) + " |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def require_valgrind() -> None:
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (Debian: valgrind, redis-server)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout to run the broker from"
    )
    args = parser.parse_args()
    require_valgrind()
    root = args.root.resolve()
    asyncio.run(
        table(
            f"broker from {root}; {args.reads} reads of each kind over {CONNECTIONS} connections",
            {
                "secret read": "secret read, instructions",
                "access-token read": "access-token read, instructions",
            },
            functools.partial(one_run, root, args.reads),
            args.repeat,
        )
    )


if __name__ == "__main__":
    main()
