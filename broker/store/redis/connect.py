"""Turn a Redis URL into a redis-py asyncio client with bounded timeouts.

    redis://[user:password@]host:port[/db]         standalone (rediss:// for TLS)
    redis+cluster://[user:password@]host:port[,host:port...]      Cluster (rediss+cluster)
    redis+sentinel://[user:password@]host:port[,host:port...]/<service>[/db]   Sentinel

Retry policy: one retry after a short jittered backoff, on connection errors only. That
one retry is what makes a pooled connection that went stale while Redis restarted recover
transparently; timeouts are not retried (the caller's overall deadline is already spent, and
a timed-out write may have been applied). The Cluster client also retries once, after
re-reading the topology, on ClusterDownError and timeouts. Every socket operation is bounded
by `timeout`, and RedisStore bounds each whole call by the same `timeout` on top.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from broker.errors import ConfigError

Client = Redis | RedisCluster

_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel")


@dataclass(frozen=True, slots=True)
class Connected:
    client: Client
    close: Callable[[], Awaitable[None]]
    """Closes the client and anything it depends on (sentinel connections)."""


def _retry() -> Retry:
    return Retry(
        ExponentialWithJitterBackoff(cap=0.1, base=0.02),
        retries=1,
        supported_errors=(RedisConnectionError,),
    )


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.split(","):
        host, port = part, default_port
        if part.startswith("["):  # [ipv6]:port
            end = part.find("]")
            host, rest = part[1:end], part[end + 1 :]
            if rest:
                port = int(rest.removeprefix(":"))
        elif ":" in part:
            host, _, port_text = part.rpartition(":")
            port = int(port_text)
        if not host:
            raise ValueError("empty host")
        hosts.append((host, port))
    return hosts


def connect(url: str, timeout: float, max_connections: int) -> Connected:
    """Build (but do not yet connect) a client for `url`. Raises ConfigError for a bad URL;
    messages never repeat the URL, which may carry a password."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _SCHEMES:
        raise ConfigError(f"unsupported Redis URL scheme {scheme!r}: use one of {_SCHEMES}")
    common: dict[str, Any] = {
        # No per-read socket timeout: every call already runs under one `asyncio.timeout`
        # (RedisStore._run), and redis-py would open a second timeout context per pipelined
        # reply, a large share of a rewrap's time (docs/benchmarks.md). A call cut short by
        # the deadline drops its connection (redis-py disconnects on cancellation), so no
        # reply is misread.
        "socket_timeout": None,
        "socket_connect_timeout": timeout,
        "retry": _retry(),
        "max_connections": max_connections,
    }
    if scheme in ("redis", "rediss"):
        standalone = Redis.from_url(url, **common)
        return Connected(standalone, standalone.aclose)
    try:
        parts = urlsplit(url)
        userinfo, _, netloc = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        auth: dict[str, Any] = {
            "username": unquote(user) or None,
            "password": unquote(password) or None,
        }
        path = [p for p in parts.path.split("/") if p]
        if scheme.endswith("+cluster"):
            if path:
                raise ValueError("a cluster URL has no path (Cluster has only db 0)")
            nodes = [ClusterNode(h, p) for h, p in _hosts(netloc, 6379)]
            cluster = RedisCluster(
                startup_nodes=nodes, ssl=scheme.startswith("rediss"), **auth, **common
            )
            return Connected(cluster, cluster.aclose)
        if not 1 <= len(path) <= 2:
            raise ValueError("a sentinel URL needs /<service name>[/<db>]")
        db = int(path[1]) if len(path) == 2 else 0
        sentinels = _hosts(netloc, 26379)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL ({scheme}): {exc}") from None
    # sentinel queries (master discovery) keep a socket timeout: they run inside connect
    sentinel_kwargs = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs, **common)  # type: ignore[no-untyped-call]
    master: Redis = sentinel.master_for(path[0], db=db, **auth)

    async def close() -> None:
        await master.aclose()
        for s in sentinel.sentinels:
            await s.aclose()

    return Connected(master, close)
