"""Token refresh: the stampede's caller latency and proactive refresh throughput, one run.

    .venv/bin/python bench/refresh.py [--cycles 10] [--callers 500] [--brokers 2]
        [--provider-latency 0.1] [--lifetime 4] [--connections 10000] [--profile FILE]

Starts, on this machine: a redis-server on a free port and a fake token endpoint in its own
process, which counts every token request it receives and answers `/slow/token` after an
artificial latency (tokens living `--lifetime` seconds) and `/fast/token` at once (1-hour
tokens). Both parts use OAuth `client_credentials` connectors: the broker fetches the app token
itself and refreshes it through the same single-flight path as a refresh-token grant.

1. Stampede. `--brokers` broker processes share the Redis (BROKER_REFRESHER=false: only
   on-demand refresh). One connection, one runtime token. Each cycle waits until the token is
   stale (remaining life <= half its lifetime, the effective margin for short tokens), fires
   `--callers` concurrent GET /v1/runtime/oauth/access-token split across the brokers, records
   each caller's latency, and checks that exactly one token request reached the provider and
   every caller got the same new token. Right after, the same burst on the now fresh token
   (no provider call) shows what the burst alone costs. One untimed warm-up cycle first.
2. Proactive refresh. `--connections` client_credentials connections are written straight
   into a fresh Redis database with the broker's own service code (same keyring file), their
   1-hour tokens expiring in 20-60 s, so all are due. Then one broker with the background
   refresher starts; the bench polls the token endpoint's counter until every connection has
   been refreshed and checks every record holds its new token and none is still due.
   `--profile FILE` also records a py-spy profile (raw, collapsed stacks) of that broker for
   a few seconds mid-run and prints the hottest frames (py-spy pauses the process to sample,
   so the throughput of a profiled run is lower).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from common import ADMIN, call, client_credentials_manifest, free_port, wait_http
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class KeptAlive:
    """One caller: a kept-alive HTTP/1.1 connection sending the same GET, timed from just
    before its request is written to its parsed answer. Plain asyncio streams, because the
    client shares the machine's two cores with the brokers it measures: aiohttp's client
    cost about three times as much per call, and with 500 callers that queueing in the
    client was most of what a burst's p99 showed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes):
        self._reader, self._writer, self._request = reader, writer, request

    @classmethod
    async def open(cls, url: str, token: str) -> KeptAlive:
        parts = urllib.parse.urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        return cls(reader, writer, request)

    async def get(self) -> tuple[float, int, str]:
        """(seconds, status, access_token or "")."""
        started = time.perf_counter()
        self._writer.write(self._request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = json.loads(await self._reader.readexactly(length))
        return time.perf_counter() - started, status, body.get("access_token", "")

    def close(self) -> None:
        self._writer.close()


PROVIDER = """
import asyncio, sys, time
from aiohttp import web
LATENCY, LIFETIME = float(sys.argv[2]), int(sys.argv[3])
arrivals = {"slow": [], "fast": []}
grants = {}
async def token(request):
    kind = request.match_info["kind"]
    arrivals[kind].append(time.time())
    form = await request.post()
    grant = form.get("grant_type", "?")
    grants[grant] = grants.get(grant, 0) + 1
    if kind == "slow":
        await asyncio.sleep(LATENCY)
    return web.json_response({
        "access_token": "at_" + kind + "_" + str(len(arrivals[kind])),
        "token_type": "Bearer",
        "expires_in": LIFETIME if kind == "slow" else 3600,
        "scope": "read",
    })
async def stats(request):
    fast = arrivals["fast"]
    return web.json_response({
        "slow": arrivals["slow"],
        "fast": {"count": len(fast), "first": fast[0] if fast else None,
                 "last": fast[-1] if fast else None},
        "grants": grants,
    })
app = web.Application()
app.router.add_post("/{kind:slow|fast}/token", token)
app.router.add_get("/stats", stats)
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    loop = asyncio.new_event_loop()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=loop)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-refresh-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.redis_port, self.provider_port = free_port(), free_port()
        self.provider = f"http://127.0.0.1:{self.provider_port}"

    def start(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"proc-{len(self.procs)}.log").open("wb")
        self.logs.append(log)
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def broker(self, db: int, refresher: bool) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BROKER_")},
            "BROKER_STORE": f"redis://127.0.0.1:{self.redis_port}/{db}",
            "BROKER_KEYRING_FILE": str(self.tmp / "keyring.json"),
            "BROKER_ADMIN_TOKEN": ADMIN,
            "BROKER_PORT": str(port),
            "BROKER_CONNECTORS_DIRS": str(self.tmp / "connectors"),
            "BROKER_REFRESHER": "true" if refresher else "false",
            "PYTHONPATH": str(ROOT),
        }
        proc = self.start([sys.executable, "-m", "broker.cli", "serve"], env)
        return proc, f"http://127.0.0.1:{port}"

    def provider_stats(self) -> Any:
        with urllib.request.urlopen(f"{self.provider}/stats", timeout=10) as resp:
            return json.loads(resp.read())

    async def run(self) -> None:
        args = self.args
        self.start(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        )
        self.start(
            [
                sys.executable,
                "-c",
                PROVIDER,
                str(self.provider_port),
                str(args.provider_latency),
                str(args.lifetime),
            ]
        )
        for key, kind in (("bench-slow", "slow"), ("bench-fast", "fast")):
            (self.tmp / "connectors" / key).mkdir(parents=True)
            (self.tmp / "connectors" / key / "manifest.json").write_text(
                json.dumps(
                    client_credentials_manifest(
                        key, f"{self.provider}/{kind}/token", f"bench_{kind}"
                    )
                )
            )
        keyring = self.tmp / "keyring.json"
        subprocess.run(
            [sys.executable, "-m", "broker.cli", "keys", "generate", "--out", str(keyring)],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        await asyncio.to_thread(wait_http, f"{self.provider}/stats")
        print(
            f"{os.cpu_count()} CPUs ({cpu_model()}); Python {sys.version.split()[0]}; "
            f"{redis_version()} on the same machine; load average before the run "
            f"{os.getloadavg()[0]:.2f}\n"
        )
        await self.stampede()
        await self.proactive()

    # --- 1. stampede ---------------------------------------------------------------------

    async def stampede(self) -> None:
        args = self.args
        brokers = [self.broker(0, refresher=False) for _ in range(args.brokers)]
        for _, base in brokers:
            await asyncio.to_thread(wait_http, f"{base}/readyz")
        base = brokers[0][1]

        def setup() -> str:
            call(
                "PUT", f"{base}/v1/oauth-apps/bench_slow", {"client_id": "c", "client_secret": "s"}
            )
            conn = call(
                "POST",
                f"{base}/v1/connections",
                {"tenant_id": "bench", "connector": "bench-slow", "settings": {}},
            )
            return str(
                call("POST", f"{base}/v1/runtime-tokens", {"connection_id": conn["id"]})["token"]
            )

        runtime_token = await asyncio.to_thread(setup)
        urls = [f"{b}/v1/runtime/oauth/access-token" for _, b in brokers]
        stale: list[list[float]] = []
        fresh: list[list[float]] = []
        cycles: list[dict[str, Any]] = []
        redis = Redis(port=self.redis_port)
        # one kept-alive connection per caller, opened before the first burst
        callers = [
            await KeptAlive.open(urls[i % len(urls)], runtime_token) for i in range(args.callers)
        ]
        try:

            async def burst() -> tuple[list[float], set[str], float]:
                started = time.time()
                answers = await asyncio.gather(*(caller.get() for caller in callers))
                bad = [status for _, status, _ in answers if status != 200]
                if bad:
                    raise SystemExit(f"{len(bad)} callers failed: {collections.Counter(bad)}")
                return [a[0] for a in answers], {a[2] for a in answers}, started

            for cycle in range(args.cycles + 1):  # cycle 0 is the warm-up
                arrivals = await asyncio.to_thread(self.provider_stats)
                stale_at = arrivals["slow"][-1] + args.lifetime / 2 + 0.02
                await asyncio.sleep(max(0.0, stale_at - time.time()))
                commands = await redis_commands(redis)
                latencies, tokens, started = await burst()
                after = (await asyncio.to_thread(self.provider_stats))["slow"]
                calls = len(after) - len(arrivals["slow"])
                commands = await redis_commands(redis) - commands
                fresh_commands = await redis_commands(redis)
                fresh_latencies, fresh_tokens, _ = await burst()
                fresh_calls = len((await asyncio.to_thread(self.provider_stats))["slow"]) - len(
                    after
                )
                fresh_commands = await redis_commands(redis) - fresh_commands
                if calls != 1 or len(tokens) != 1 or fresh_calls or fresh_tokens != tokens:
                    raise SystemExit(
                        f"cycle {cycle}: {calls} provider calls, {len(tokens)} distinct tokens "
                        f"(fresh burst: {fresh_calls} calls, {len(fresh_tokens)} tokens)"
                    )
                if cycle == 0:
                    continue
                stale.append(latencies)
                fresh.append(fresh_latencies)
                cycles.append(
                    {
                        "commands": commands,
                        "fresh_commands": fresh_commands,
                        "reach": (after[-1] - started) * 1000,
                        "p50": pct(latencies, 50) * 1000,
                        "p99": pct(latencies, 99) * 1000,
                        "max": max(latencies) * 1000,
                    }
                )
        finally:
            for caller in callers:
                caller.close()
        await redis.aclose()
        for proc, _ in brokers:
            self.stop(proc)

        latency_ms = args.provider_latency * 1000
        print(
            f"### Refresh stampede: {args.callers} concurrent GET /v1/runtime/oauth/access-token "
            f"split over {args.brokers} broker process(es) on one Redis, provider latency "
            f"{latency_ms:.0f} ms, {args.cycles} cycles\n"
        )
        print("| burst | provider calls per cycle | p50 ms | p90 ms | p99 ms | max ms |")
        print("|---|--:|--:|--:|--:|--:|")
        for name, runs, ncalls in (
            ("stale token (stampede, one refresh)", stale, 1),
            ("fresh token (same burst, no refresh)", fresh, 0),
        ):
            flat = [x * 1000 for run in runs for x in run]
            print(
                f"| {name} | {ncalls} | {pct(flat, 50):.1f} | {pct(flat, 90):.1f} "
                f"| {pct(flat, 99):.1f} | {max(flat):.1f} |"
            )
        flat = [x * 1000 for run in stale for x in run]
        target = latency_ms + 50
        verdict = "met" if pct(flat, 99) <= target else "NOT met"
        print(
            f"\nTarget p99 <= provider latency + 50 ms = {target:.0f} ms: {verdict} "
            f"(p99 - provider latency = {pct(flat, 99) - latency_ms:.1f} ms). Every cycle: "
            f"exactly 1 token request at the provider, all {args.callers} callers got the same "
            "new token.\n"
        )
        print(
            "| cycle | provider reached after ms | p50 ms | p99 ms | max ms "
            "| Redis commands (stampede) | Redis commands (fresh burst) |"
        )
        print("|--:|--:|--:|--:|--:|--:|--:|")
        for i, c in enumerate(cycles, 1):
            print(
                f"| {i} | {c['reach']:.1f} | {c['p50']:.1f} | {c['p99']:.1f} | {c['max']:.1f} "
                f"| {c['commands']:,} | {c['fresh_commands']:,} |"
            )
        print()

    # --- 2. proactive refresh ------------------------------------------------------------

    async def proactive(self) -> None:
        args = self.args
        n = args.connections
        seeded_at = time.time()
        t0 = time.perf_counter()
        await self.seed(n, seeded_at)
        seed_seconds = time.perf_counter() - t0
        others = {
            "redis-server": self.procs[0].pid,
            "token endpoint": self.procs[1].pid,
        }
        proc, _ = self.broker(1, refresher=True)
        started = time.time()
        cpu: dict[str, float] = {}
        profile: asyncio.Task[None] | None = None
        deadline = started + args.timeout
        first_seen = None
        while True:
            stats = (await asyncio.to_thread(self.provider_stats))["fast"]
            now = time.time()
            if first_seen is None and stats["count"] > 0:
                first_seen = now
                cpu = {
                    name: cpu_seconds(pid) for name, pid in {**others, "broker": proc.pid}.items()
                }
                if args.profile:
                    profile = asyncio.create_task(self.py_spy(proc.pid))
            if stats["count"] >= n:
                break
            if now > deadline:
                raise SystemExit(f"only {stats['count']} of {n} refreshed after {args.timeout} s")
            await asyncio.sleep(0.1)
        done = time.time()
        used = {
            name: cpu_seconds(pid) - cpu[name]
            for name, pid in {**others, "broker": proc.pid}.items()
        }
        if profile is not None:
            await profile
        await asyncio.sleep(1)  # let the last writes land
        extra = (await asyncio.to_thread(self.provider_stats))["fast"]["count"] - n
        refreshed, still_due = await self.verify(n, seeded_at)
        self.stop(proc)
        assert first_seen is not None
        window = stats["last"] - stats["first"]
        wall = stats["last"] - started
        rate = (n - 1) / window
        print(
            f"### Proactive refresh: {n:,} connections due at once, one broker process "
            f"(refresher: batch 200, concurrency 32, interval 0.5 s), local token endpoint "
            f"without latency\n"
        )
        print(
            "| connections | seeded in s | first..last token request s | refreshes/s "
            "| broker start to last request s | extra token requests |"
        )
        print("|--:|--:|--:|--:|--:|--:|")
        print(f"| {n:,} | {seed_seconds:.1f} | {window:.1f} | {rate:,.0f} | {wall:.1f} | {extra} |")
        verdict = "met" if rate >= 500 else "NOT met"
        print(
            f"\nTarget 500 refreshes/s: {verdict}. Records holding their new token: "
            f"{refreshed:,} of {n:,}; still due: {still_due}.\n"
        )
        span = done - first_seen
        print(f"CPU while refreshing ({span:.1f} s wall; 100% = one core of {os.cpu_count()}):\n")
        print("| process | CPU % |")
        print("|---|--:|")
        for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
            print(f"| {name} | {seconds / span * 100:.0f} |")
        print()
        if args.profile:
            print_profile(Path(args.profile))

    async def context(self, url: str) -> Any:
        from broker.config import Settings
        from broker.crypto import KeyringFile
        from broker.manifest import load_catalog
        from broker.services.audit import AuditLog
        from broker.services.context import Context
        from broker.store.redis import RedisStore
        from broker.store.sealed import SealedStore

        settings = Settings(
            store=url,
            keyring_file=self.tmp / "keyring.json",
            connectors_dirs=[self.tmp / "connectors"],
        )
        sealed = SealedStore(await RedisStore.open(url), KeyringFile(self.tmp / "keyring.json").get)
        return Context(
            settings=settings,
            catalog=load_catalog(settings.connectors_dirs),
            store=sealed,
            http=aiohttp.ClientSession(),
            audit=AuditLog(sealed, time.time, settings.audit_retention),
        )

    async def seed(self, n: int, now: float) -> None:
        """Connections whose 1-hour tokens expire in 20-60 s: due for proactive refresh now."""
        from broker.services import connections, oauth_apps, refresh
        from broker.services.records import Connection, StoredToken

        ctx = await self.context(f"redis://127.0.0.1:{self.redis_port}/1")
        try:
            await oauth_apps.put(ctx, "bench_fast", {"client_id": "c", "client_secret": "s"})
            slots = asyncio.Semaphore(64)

            async def one(i: int) -> None:
                expires_at = now + random.uniform(20, 60)
                conn = Connection(
                    id=f"conn_{i:026x}",
                    tenant_id=f"tenant-{i}",
                    connector="bench-fast",
                    token=StoredToken(
                        access_token=f"seed_{i}",
                        expires_at=expires_at,
                        obtained_at=expires_at - 3600,
                        scopes=["read"],
                    ),
                    created_at=now,
                    updated_at=now,
                )
                async with slots:
                    await connections.create(ctx, conn)
                    await refresh.schedule_next(ctx, conn)

            await asyncio.gather(*(one(i) for i in range(n)))
            due = await ctx.store.due(time.time(), n + 1)
            if len(due) != n:
                raise SystemExit(f"{len(due)} of {n} seeded connections are due")
        finally:
            await ctx.http.close()
            await ctx.store.close()

    async def verify(self, n: int, seeded_at: float) -> tuple[int, int]:
        from broker.services import connections

        ctx = await self.context(f"redis://127.0.0.1:{self.redis_port}/1")
        try:
            slots = asyncio.Semaphore(64)

            async def one(i: int) -> bool:
                async with slots:
                    conn, _ = await connections.get(ctx, f"conn_{i:026x}")
                token = conn.token
                return (
                    token is not None
                    and token.access_token.startswith("at_fast_")
                    and token.obtained_at > seeded_at
                )

            refreshed = sum(await asyncio.gather(*(one(i) for i in range(n))))
            still_due = len(await ctx.store.due(time.time(), n))
            return refreshed, still_due
        finally:
            await ctx.http.close()
            await ctx.store.close()

    async def py_spy(self, pid: int) -> None:
        out = self.args.profile
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        await asyncio.to_thread(
            subprocess.run,
            [spy, "record", "-p", str(pid), "-d", "4", "-r", "200", "-f", "raw", "-o", out],
            capture_output=True,
            check=True,
        )

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self.logs:
            log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def print_profile(path: Path, top: int = 15) -> None:
    """The frames where the broker spends its own time (self samples), from py-spy raw."""
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        total += int(samples)
        self_time[stack.split(";")[-1]] += int(samples)
    print(f"py-spy, broker process, {total} samples; top frames by self time:\n")
    print("| frame | % |")
    print("|---|--:|")
    for frame, count in self_time.most_common(top):
        print(f"| `{frame}` | {count / total * 100:.1f} |")
    print()


async def redis_commands(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_commands_processed"])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return "Redis " + next((p[2:] for p in out.split() if p.startswith("v=")), "?")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--callers", type=int, default=500)
    parser.add_argument("--brokers", type=int, default=2)
    parser.add_argument("--provider-latency", type=float, default=0.1, help="seconds")
    parser.add_argument("--lifetime", type=int, default=4, help="stampede token expires_in")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=90, help="proactive part, seconds")
    parser.add_argument("--profile", help="write a py-spy raw profile of the refresher here")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        try:
            import uvloop  # the broker's event loop; the client side keeps up better with it

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        runner(bench.run())
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
