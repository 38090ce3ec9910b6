"""Instructions per proxied call, counted by callgrind: the broker's CPU cost of the egress
proxy, deterministic where bench/proxy.py's requests/s move with the machine's load.

    .venv/bin/python bench/proxy_instructions.py [--calls 2000] [--root PATH] [--repeat 2]

Starts a redis-server, the fake provider (not under valgrind) and a broker under
`valgrind --tool=callgrind --instr-atstart=no` (background loops off: their polls count by
the wall-clock second, not by the call), with an API-key connector (`proxy_stack`, the
same stack as bench/proxy.py's).
Warms up, then counts, one at a time: `--calls` proxied GETs of the small JSON answer over
8 kept-alive connections (path form), and a 10 MB streamed answer read 3 times. Prints
instructions per call and per streamed MB. `--root` runs the broker from another checkout
(an A/B of two commits: `git archive COMMIT | tar -x -C /tmp/before`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import subprocess
from pathlib import Path

import aiohttp
from proxy_stack import proxy_stack
from runtime_instructions import CONNECTIONS, counted, reads, require_valgrind, table

ROOT = Path(__file__).resolve().parents[1]
STREAMED = 10 * 1024 * 1024
STREAMS = 3


async def streams(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, auto_decompress=False) as session:
        for _ in range(STREAMS):
            got = 0
            async with session.get(url) as resp:
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    got += len(chunk)
            assert got == STREAMED, got


def control(pid: int, state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True)


async def one_run(root: Path, count: int, tmp: Path) -> dict[str, float]:
    out_file = tmp / "callgrind.out"
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    wrapper.append(f"--callgrind-out-file={out_file}")
    results: dict[str, float] = {}
    with proxy_stack(root, wrapper=wrapper, ready_within=300) as stack:
        small, big = f"{stack.proxied}/v1/customers", f"{stack.proxied}/big?size={STREAMED}"
        await reads(small, stack.token, 200)  # warm-up
        await streams(big, stack.token)
        for name, run in (
            ("call", functools.partial(reads, small, stack.token, count)),
            ("stream", functools.partial(streams, big, stack.token)),
        ):
            control(stack.broker_pid, "on")
            await run()
            control(stack.broker_pid, "off")
            dump = ["callgrind_control", "-d", str(stack.broker_pid)]
            subprocess.run(dump, check=True, capture_output=True)
            dumped = sorted(tmp.glob("callgrind.out*"), key=lambda p: p.stat().st_mtime)[-1]
            per = count if name == "call" else STREAMS * STREAMED / 1024 / 1024
            results[name] = counted(dumped) / per
            for stale in tmp.glob("callgrind.out*"):
                stale.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run it from")
    args = parser.parse_args()
    require_valgrind()
    root = args.root.resolve()
    asyncio.run(
        table(
            f"broker from {root}; {args.calls} proxied calls over {CONNECTIONS} connections",
            {"call": "small GET, instructions per call", "stream": "streamed, instructions per MB"},
            functools.partial(one_run, root, args.calls),
            args.repeat,
        )
    )


if __name__ == "__main__":
    main()
