"""REDIS_URL, read once for every process: one Redis (`redis://`) or a Redis Cluster (`redis+cluster://`).

    redis://[user:password@]host:port/db              one Redis, as redis-py reads it
    redis+cluster://[user:password@]host:port[,host:port…]   a Redis Cluster: any reachable node
    rediss+cluster://…                                the same over TLS

The cluster form lists seed nodes only: clients learn the slot map from whichever answers first,
so one seed is enough and several survive a dead seed. A cluster has database 0 alone, so a path
other than `/` or `/0` is refused, like any other malformed URL, with RedisUrlError naming REDIS_URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from flashgate.settings import ConfigError

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme → TLS
AnyRedis = aioredis.Redis | RedisCluster


class RedisUrlError(ConfigError):
    """REDIS_URL cannot be used; the message names the variable and never echoes a password.

    A ConfigError, so every process's settings refuse it in one line like any other setting."""


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    """A `redis+cluster://` URL, parsed: seed nodes and credentials."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def client_kwargs(self) -> dict[str, Any]:
        """Credentials and TLS as redis-py's connection keyword arguments."""
        kwargs: dict[str, Any] = {"username": self.username, "password": self.password}
        if self.tls:
            kwargs["ssl"] = True
        return kwargs


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def parse_cluster(url: str) -> ClusterUrl:
    """Parse a `redis+cluster://` URL; RedisUrlError on anything else."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise RedisUrlError("REDIS_URL: not a redis+cluster:// URL")
    creds, at, hosts = rest.rpartition("@")
    hosts, _, path = hosts.partition("/")
    if path.split("?", 1)[0] not in ("", "0"):
        raise RedisUrlError("REDIS_URL: a Redis Cluster has database 0 only")
    seeds = []
    for part in hosts.split(","):
        try:
            split = urlsplit(f"//{part}")
            host, port = split.hostname, split.port
        except ValueError as e:
            raise RedisUrlError(f"REDIS_URL: {part!r} is not host:port") from e
        if not host or port is None:
            raise RedisUrlError(f"REDIS_URL: {part!r} is not host:port")
        seeds.append((host, port))
    username = password = None
    if at:
        user, colon, secret = creds.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else None)
    return ClusterUrl(tuple(seeds), username, password, CLUSTER_SCHEMES[scheme.lower()])


def check(url: str) -> None:
    """RedisUrlError unless `url` is a URL some client here can use."""
    if is_cluster(url):
        parse_cluster(url)
    elif url.split("://", 1)[0].lower() not in ("redis", "rediss", "unix"):
        raise RedisUrlError("REDIS_URL: use redis://, rediss://, unix:// or redis+cluster://")


async def redis_now_ms(client: AnyRedis) -> int:
    """Redis's clock (TIME) in ms: the one admit.lua picks its answer and GCRA buckets by."""
    seconds, micros = await client.time()
    return (int(seconds) * 1_000_000 + int(micros)) // 1000


def connect(url: str, **kwargs: Any) -> AnyRedis:
    """A redis-py asyncio client for `url` (no I/O until the first command); `kwargs` as redis-py takes them.

    For a cluster, redis-py's RedisCluster: it routes each command by its key's slot and follows
    MOVED/ASK and failovers itself. Slot-less commands (TIME, PING) go to a node of its choosing.
    """
    if not is_cluster(url):
        return aioredis.Redis.from_url(url, **kwargs)
    parsed = parse_cluster(url)
    # Not the whole slot space required: with one shard down, the other SKUs stay reachable.
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.seeds],
        require_full_coverage=False,
        **{**parsed.client_kwargs(), **kwargs},
    )
