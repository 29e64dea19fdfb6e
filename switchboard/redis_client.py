"""The one way Switchboard opens Redis: short timeouts, so a slow Redis degrades to Postgres."""

from __future__ import annotations

import redis.asyncio as aioredis

from switchboard.config import env_float


def create_redis(url: str, *, timeout: float | None = None) -> aioredis.Redis:
    """Open an asyncio Redis client.

    Args:
        url: A redis-py URL (``redis://``, ``rediss://`` or ``unix://``).
        timeout: Seconds before a command is abandoned; defaults to
            ``SWITCHBOARD_REDIS_TIMEOUT`` (0.25 s). Callers treat a timeout as
            "Redis is down" and fall back to Postgres.
    """
    seconds = timeout if timeout is not None else env_float("SWITCHBOARD_REDIS_TIMEOUT", 0.25)
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        health_check_interval=30,
    )
    return client
