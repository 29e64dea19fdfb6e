"""The one way Switchboard opens Redis: short timeouts, so a slow Redis degrades to Postgres, and
bounded pools, so a burst waits for a connection instead of failing with "Too many connections".

A Redis Cluster is named by its URL's scheme: ``redis+cluster://host:port`` (or
``rediss+cluster://`` for TLS), any node of the cluster as the seed; the client
learns the others from it. Every key Switchboard writes carries a hash tag (the
user's or the org's id in braces), and every script and transaction touches the
keys of one tag only, so each runs on one node; pipelines without a transaction
may mix tags (the cluster client sends each node its share). Pub/sub channels
are not keys: a cluster carries a PUBLISH to the subscribers of every node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from switchboard.config import env_float, env_int
from switchboard.errors import InvalidArgument

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_seed_url(url: str) -> str | None:
    """The plain URL of the seed node when ``url`` names a Redis Cluster, else None.

    Raises:
        InvalidArgument: a cluster URL with a database other than 0 or a Unix socket
            (a cluster has neither).
    """
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    if plain is None:
        return None
    path = rest.partition("?")[0].partition("/")[2]
    if path not in ("", "0"):
        raise InvalidArgument(f"a Redis Cluster has only database 0, not /{path}: write {scheme}://host:port")
    return f"{plain}://{rest}"


def create_redis(
    url: str,
    *,
    timeout: float | None = None,
    pool_size: int | None = None,
    pool_wait: float = 5.0,
    resend_on_dropped: bool = False,
) -> aioredis.Redis:
    """Open an asyncio Redis client (a cluster client for ``redis+cluster://``).

    The cluster client answers the same commands, so it is typed as ``aioredis.Redis``
    for its callers; the Redis Cluster suite (``tests/e2e/test_redis_cluster.py``) runs
    every service against a real cluster to hold that.

    Args:
        url: A redis-py URL (``redis://``, ``rediss://`` or ``unix://``), or
            ``redis+cluster://`` / ``rediss+cluster://`` and any node of a cluster.
        timeout: Seconds before a command is abandoned; defaults to
            ``SWITCHBOARD_REDIS_TIMEOUT`` (0.25 s). Callers treat a timeout as
            "Redis is down" and fall back to Postgres.
        pool_size: With a size, at most that many connections, and a caller past
            it waits up to ``pool_wait`` seconds for one (backpressure) instead of
            failing with "Too many connections"; None keeps redis-py's pool. On a
            cluster the bound is per node, and a caller past it fails at once
            (redis-py's cluster client has no waiting pool): the error every caller
            takes for Redis being down.
        pool_wait: Seconds to wait for a free connection of a sized pool.
        resend_on_dropped: A command whose connection turns out dropped (Redis restarted
            since it was opened) is sent once more on a new connection, instead of failing:
            for callers that would rather run a command twice, at worst, than count a
            restarted Redis as down (a sized pool otherwise fails once per stale connection).
    """
    seconds = timeout if timeout is not None else env_float("SWITCHBOARD_REDIS_TIMEOUT", 0.25)
    options: dict[str, Any] = {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "health_check_interval": 30,
    }
    if resend_on_dropped:
        options["retry"] = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    seed = cluster_seed_url(url)
    if seed is not None:
        cluster = _RedisCluster.from_url(seed, max_connections=pool_size or 100, **options)
        return cast(aioredis.Redis, cluster)
    if pool_size is not None:
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=pool_wait, **options)
        return aioredis.Redis(connection_pool=pool)
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    return client


class _RedisCluster(RedisCluster):
    """redis-py's cluster client, which learns the cluster's slots before its first command runs.

    redis-py decides where a command goes before it initializes: commands that start
    together on a new client go to one node, are redirected (MOVED), and enough
    redirections make it rebuild its nodes under commands in flight, which then fail
    or are sent twice. Initializing first (once, under redis-py's own lock) routes
    every command by its slot from the start.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self.initialize()  # at once when done: redis-py checks a flag first
        return await super().execute_command(*args, **kwargs)


async def open_pubsub(client: aioredis.Redis) -> PubSub:
    """A pub/sub of ``client`` (of a cluster client, once it knows the cluster's slots).

    Raises:
        RedisError, OSError: Redis (every node of a cluster) is unreachable.
    """
    if isinstance(client, RedisCluster):
        await client.initialize()  # its pub/sub picks a node by slot and cannot learn them itself
    return client.pubsub()


@dataclass(frozen=True)
class RedisPools:
    """How many Redis connections a service process (thread_store, session_api) opens.

    The gRPC servers do not cap concurrent calls (a burst queues for the event loop,
    ``switchboard.grpc_runtime``), so no pool can match them one for one. Each call
    holds a connection for one round trip at a time; past the bound a call waits for a
    free connection (backpressure). A wait that runs out raises redis-py's
    ``ConnectionError``, which every caller already treats as Redis down: the cache
    reads Postgres, feed appends are retried in the background, a watch ends
    UNAVAILABLE and its client comes back.

    Attributes:
        size: Connections for commands (cache reads and writes, feed appends,
            session liveness). 64 round trips in flight is more than one process's
            event loop keeps busy (each takes well under a millisecond of Redis).
        watch_size: Connections for blocking reads: each live watch holds one for up to
            its block time (5 s), and session_api's revocation subscription one for good.
            As many as the agent runner gives its joiners.
        wait_seconds: How long a call waits for a free connection.
    """

    size: int = 64
    watch_size: int = 256
    wait_seconds: float = 2.0

    @classmethod
    def from_env(cls) -> RedisPools:
        """Read ``SWITCHBOARD_REDIS_POOL_SIZE`` and ``SWITCHBOARD_REDIS_WATCH_POOL_SIZE``."""
        return cls(
            size=env_int("SWITCHBOARD_REDIS_POOL_SIZE", cls.size, minimum=1),
            watch_size=env_int("SWITCHBOARD_REDIS_WATCH_POOL_SIZE", cls.watch_size, minimum=1),
        )


def create_service_redis(url: str, pools: RedisPools) -> tuple[aioredis.Redis, aioredis.Redis]:
    """A service's two Redis clients, each on a bounded pool.

    Returns:
        The command client (``SWITCHBOARD_REDIS_TIMEOUT``: a slow command counts as Redis
        down) and the watch client (a 30 s read timeout, longer than any blocking read).
    """
    commands = create_redis(url, pool_size=pools.size, pool_wait=pools.wait_seconds)
    watches = create_redis(url, timeout=30.0, pool_size=pools.watch_size, pool_wait=pools.wait_seconds)
    return commands, watches
