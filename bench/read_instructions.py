"""Instructions per runtime read, counted with callgrind, for one or more source trees.

    .venv/bin/python bench/read_instructions.py [--reads 2000] [TREE ...]

wrk's requests/s move with whatever else the machine runs; an instruction count does not
(valgrind counts what the broker executes, not how long it waits for a core). For each tree
(a checkout of this repository: the working tree by default, or e.g. a `git worktree` of an
older commit) this starts a redis-server, a fake token endpoint, and the tree's
`python -m broker.cli serve` under `valgrind --tool=callgrind`; makes an API-key connection
and a client_credentials one over the admin API; warms both reads up; then, per read kind,
zeroes the counters, sends `--reads` reads over 8 kept-alive connections and dumps. The
proactive refresher and the event worker are off (`BROKER_REFRESHER`, `BROKER_EVENTS_WORKER`):
their polls, slowed down by valgrind, would otherwise land in the count as noise. It prints
instructions per read for GET /v1/runtime/secrets/api_key and GET
/v1/runtime/oauth/access-token, and each tree's ratio to the first one. Needs valgrind
(Debian package `valgrind`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from common import ADMIN, call, client_credentials_manifest, free_port, wait_http
from runtime_api import token_endpoint

ROOT = Path(__file__).resolve().parents[1]
READS = {
    "secret": "/v1/runtime/secrets/api_key",
    "token": "/v1/runtime/oauth/access-token",
}


def callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


async def reads(base: str, path: str, token: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker(n: int) -> None:
            for _ in range(n):
                async with http.get(base + path, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"{path}: {resp.status}")

        await asyncio.gather(*(worker(count // 8) for _ in range(8)))


async def measure(tree: Path, count: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-instr-"))
    redis_port, token_port, broker_port = (free_port() for _ in range(3))
    runner = await token_endpoint(token_port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
        )
        (tmp / "connectors" / "bench-cc").mkdir(parents=True)
        (tmp / "connectors" / "bench-cc" / "manifest.json").write_text(
            json.dumps(
                client_credentials_manifest(
                    "bench-cc", f"http://127.0.0.1:{token_port}/token", "bench_cc"
                )
            )
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BROKER_")},
            "PYTHONPATH": str(tree),
        }
        subprocess.run(
            [sys.executable, "-m", "broker.cli", "keys", "generate", "--out", str(tmp / "k.json")],
            check=True,
            cwd=tree,
            env=env,
            capture_output=True,
        )
        env.update(
            {
                "BROKER_STORE": f"redis://127.0.0.1:{redis_port}/0",
                "BROKER_KEYRING_FILE": str(tmp / "k.json"),
                "BROKER_ADMIN_TOKEN": ADMIN,
                "BROKER_PORT": str(broker_port),
                "BROKER_CONNECTORS_DIRS": str(tmp / "connectors"),
                "PYTHONHASHSEED": "0",
                # the background loops' polls would land in the count as noise
                "BROKER_REFRESHER": "false",
                "BROKER_EVENTS_WORKER": "false",
            }
        )
        out = tmp / "callgrind.out"
        log = (tmp / "broker.log").open("wb")
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
        ]
        broker = subprocess.Popen(
            [*valgrind, sys.executable, "-m", "broker.cli", "serve"],
            env=env,
            cwd=tree,
            stdout=log,
            stderr=log,
        )
        procs.append(broker)
        base = f"http://127.0.0.1:{broker_port}"
        await asyncio.to_thread(wait_http, f"{base}/readyz", 300)

        def setup() -> dict[str, str]:
            api_key = call(
                "POST",
                f"{base}/v1/connections",
                {"tenant_id": "bench", "connector": "stripe", "settings": {"api_key": "sk_b"}},
            )
            call("PUT", f"{base}/v1/oauth-apps/bench_cc", {"client_id": "c", "client_secret": "s"})
            oauth = call(
                "POST",
                f"{base}/v1/connections",
                {"tenant_id": "bench", "connector": "bench-cc", "settings": {}},
            )
            return {
                kind: call("POST", f"{base}/v1/runtime-tokens", {"connection_id": conn["id"]})[
                    "token"
                ]
                for kind, conn in (("secret", api_key), ("token", oauth))
            }

        tokens = await asyncio.to_thread(setup)
        per_read: dict[str, float] = {}
        for kind, path in READS.items():
            await reads(base, path, tokens[kind], 400)  # warm-up: caches, connections
            callgrind(broker.pid, "--zero")
            await reads(base, path, tokens[kind], count)
            callgrind(broker.pid, f"--dump={kind}")
            time.sleep(0.5)
            dumps = sorted(tmp.glob("callgrind.out*"), key=lambda p: p.stat().st_mtime)
            text = dumps[-1].read_text(errors="replace")
            total = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
            if total is None:
                raise SystemExit(f"no total in {dumps[-1]}")
            per_read[kind] = int(total.group(1)) / count
        return per_read
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await runner.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("trees", nargs="*", type=Path, default=[ROOT])
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    rows = [(tree, asyncio.run(measure(tree.resolve(), args.reads))) for tree in args.trees]
    first = rows[0][1]
    print(f"callgrind, {args.reads} reads per kind over 8 kept-alive connections, Redis store")
    print("| tree | secret read (instr.) | ratio | token read (instr.) | ratio |")
    print("|---|--:|--:|--:|--:|")
    for tree, got in rows:
        print(
            f"| {tree} | {got['secret'] / 1000:.1f}k | {got['secret'] / first['secret']:.3f} "
            f"| {got['token'] / 1000:.1f}k | {got['token'] / first['token']:.3f} |"
        )


if __name__ == "__main__":
    main()
