"""Redis pools are bounded: a burst past the pool waits for a connection instead of failing with
"Too many connections", and a wait that runs out is an error the services already take for Redis
being down (the cache reads Postgres, the feed retries in the background), never a 500."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from services.thread_store.cache import RedisHealth, ThreadCache
from services.thread_store.servicer import ThreadItemWireCodec
from switchboard.errors import InvalidArgument
from switchboard.grpc_runtime import STORAGE_DOWN
from switchboard.redis_client import RedisPools, cluster_seed_url, create_redis, create_service_redis
from switchboard.streams import REDIS_ERRORS, Stream, StreamFeed

BURST = 50


@pytest.fixture
async def tiny_pool(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(redis_url, pool_size=2, pool_wait=30.0)
    yield client
    await client.aclose()


async def connections_used(client: aioredis.Redis, calls: int) -> set[int]:
    """Redis's ids of the connections that ``calls`` concurrent commands ran on."""
    ids = await asyncio.gather(*(client.client_id() for _ in range(calls)))
    return set(ids)


async def test_a_burst_past_a_tiny_pool_waits_its_turn_and_every_call_succeeds(tiny_pool: aioredis.Redis) -> None:
    key = f"test:pool:{uuid.uuid4().hex}"
    counts = await asyncio.gather(*(tiny_pool.incr(key) for _ in range(BURST)))
    assert sorted(counts) == list(range(1, BURST + 1))
    assert len(await connections_used(tiny_pool, BURST)) <= 2
    await tiny_pool.delete(key)


async def test_redis_pys_ordinary_pool_of_the_same_size_fails_the_same_burst(redis_url: str) -> None:
    # What the bounded pools replace: past its size, redis-py's own pool raises at once.
    client = aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(redis_url, max_connections=2))
    try:
        with pytest.raises(RedisConnectionError, match="Too many connections"):
            await asyncio.gather(*(client.ping() for _ in range(BURST)))
    finally:
        await client.aclose()


async def test_a_wait_that_runs_out_is_an_error_the_services_take_for_redis_down(redis_url: str) -> None:
    client = create_redis(redis_url, pool_size=1, pool_wait=0.05)
    held = await client.connection_pool.get_connection()  # the pool's only connection, busy
    try:
        with pytest.raises(RedisConnectionError) as waited:
            await client.get("test:pool:any")
        assert isinstance(waited.value, REDIS_ERRORS)  # feeds and watches: retried / UNAVAILABLE
        assert isinstance(waited.value, STORAGE_DOWN)  # anything that escapes: UNAVAILABLE, not INTERNAL

        # The thread cache falls back to Postgres and opens its breaker; the feed keeps the entry.
        health = RedisHealth()
        cache = ThreadCache(client, health, codec=ThreadItemWireCodec())
        assert await cache.get_thread(user_id="alice", thread_id="thr_1") is None
        assert not health.available
        feed = StreamFeed(client, client, name="test feed")
        await feed.append([Stream(key=f"test:pool:{uuid.uuid4().hex}", max_entries=10)], {"n": 1})
        assert feed.pending == 1
        await feed.close()
    finally:
        await client.connection_pool.release(held)
    assert await client.ping()  # the connection is back: so is Redis
    await client.aclose()


async def test_both_clients_of_a_service_are_bounded_and_absorb_a_burst(redis_url: str) -> None:
    commands, watches = create_service_redis(redis_url, RedisPools(size=3, watch_size=2, wait_seconds=30.0))
    try:
        assert len(await connections_used(commands, BURST)) <= 3
        assert len(await connections_used(watches, BURST)) <= 2
    finally:
        await commands.aclose()
        await watches.aclose()


def test_the_pool_sizes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_REDIS_POOL_SIZE", raising=False)
    monkeypatch.delenv("SWITCHBOARD_REDIS_WATCH_POOL_SIZE", raising=False)
    assert RedisPools.from_env() == RedisPools(size=64, watch_size=256, wait_seconds=2.0)
    monkeypatch.setenv("SWITCHBOARD_REDIS_POOL_SIZE", "8")
    monkeypatch.setenv("SWITCHBOARD_REDIS_WATCH_POOL_SIZE", "16")
    assert RedisPools.from_env() == RedisPools(size=8, watch_size=16, wait_seconds=2.0)


def test_a_cluster_is_named_by_its_urls_scheme_and_any_other_url_is_a_single_server() -> None:
    assert cluster_seed_url("redis+cluster://10.0.0.5:7000") == "redis://10.0.0.5:7000"
    assert cluster_seed_url("rediss+cluster://:secret@redis.example.com:6380/0") == (
        "rediss://:secret@redis.example.com:6380/0"
    )
    assert cluster_seed_url("REDIS+CLUSTER://host:7000?ssl_cert_reqs=none") == "redis://host:7000?ssl_cert_reqs=none"
    for single in ("redis://127.0.0.1:6379/0", "rediss://host:6380/2", "unix:///tmp/redis.sock", "host:6379"):
        assert cluster_seed_url(single) is None


def test_a_cluster_url_with_a_database_other_than_0_is_refused_saying_why() -> None:
    with pytest.raises(InvalidArgument, match="only database 0"):
        cluster_seed_url("redis+cluster://host:7000/3")
    with pytest.raises(InvalidArgument, match="only database 0"):
        create_redis("redis+cluster://host:7000/1")


def test_a_cluster_url_opens_redis_pys_cluster_client_bounded_per_node() -> None:
    client: Any = create_redis("redis+cluster://127.0.0.1:7000", pool_size=8)  # connects on first use only
    assert isinstance(client, RedisCluster)
    assert client.get_connection_kwargs()["socket_timeout"] == pytest.approx(0.25)
    assert [(node.name, node.max_connections) for node in client.startup_nodes] == [("127.0.0.1:7000", 8)]
