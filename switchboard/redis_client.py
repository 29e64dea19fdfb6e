"""The one way Switchboard opens Redis: short timeouts, so a slow Redis degrades to Postgres."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from switchboard.config import env_float


def create_redis(
    url: str, *, timeout: float | None = None, pool_size: int | None = None, pool_wait: float = 5.0
) -> aioredis.Redis:
    """Open an asyncio Redis client.

    Args:
        url: A redis-py URL (``redis://``, ``rediss://`` or ``unix://``).
        timeout: Seconds before a command is abandoned; defaults to
            ``SWITCHBOARD_REDIS_TIMEOUT`` (0.25 s). Callers treat a timeout as
            "Redis is down" and fall back to Postgres.
        pool_size: With a size, at most that many connections, and a caller past
            it waits up to ``pool_wait`` seconds for one (backpressure) instead of
            failing with "Too many connections"; None keeps redis-py's pool.
        pool_wait: Seconds to wait for a free connection of a sized pool.
    """
    seconds = timeout if timeout is not None else env_float("SWITCHBOARD_REDIS_TIMEOUT", 0.25)
    options: dict[str, Any] = {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "health_check_interval": 30,
    }
    if pool_size is not None:
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=pool_wait, **options)
        return aioredis.Redis(connection_pool=pool)
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    return client
