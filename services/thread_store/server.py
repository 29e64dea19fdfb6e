"""The thread store process: pools, servicer, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc

from services.session_api.client import users_verifier
from services.thread_store.cache import ThreadCache
from services.thread_store.feed import ChangeFeed
from services.thread_store.metrics import thread_store_collectors
from services.thread_store.repository import QUERIES_DIR, ThreadRepository
from services.thread_store.retention import RetentionConfig, RetentionSweeper
from services.thread_store.service import StoreLimits, ThreadStoreService
from services.thread_store.servicer import ThreadItemWireCodec, ThreadStoreServicer
from switchboard.api.v1 import thread_store_pb2
from switchboard.config import env_bool, env_float, env_int, env_str
from switchboard.grpc_runtime import GrpcServer, add_servicer
from switchboard.migrate import apply_migrations
from switchboard.redis_client import RedisPools, create_service_redis
from switchboard.redis_health import RedisHealth
from switchboard.scrape_metrics import register_collectors
from switchboard.service_auth import ServerAuth
from switchboard.sql import Queries, create_pool

log = logging.getLogger(__name__)

SERVICE = thread_store_pb2.DESCRIPTOR.services_by_name["ThreadStore"]
SERVICE_NAME = SERVICE.full_name
DEFAULT_PORT = 50051


@dataclass(frozen=True)
class ThreadStoreConfig:
    """Everything the thread store needs to start.

    Attributes:
        database_url: Postgres.
        redis_url: Redis, or None to run without cache and change feed.
        cache_enabled: Use the Redis hot cache (``SWITCHBOARD_CACHE=off`` keeps
            Redis for the change feed only; benchmarks compare both).
        cache_ttl_seconds: How long an untouched thread stays cached.
        cache_max_items: Threads with more items are served from Postgres.
        migrate: Apply pending migrations at start-up.
        redis_pools: Redis connections for commands and for watches (bounded; past them a call waits).
        limits: Size limits on stored objects.
        session_api_target: ``host:port`` of session_api, which verifies end users' tokens on this
            service's gRPC API (None: service tokens only).
        retention: What the retention sweep deletes, and how often it runs here.
    """

    database_url: str
    redis_url: str | None
    cache_enabled: bool = True
    cache_ttl_seconds: float = 600.0
    cache_max_items: int = 2000
    migrate: bool = True
    pool_size: int = 10
    redis_pools: RedisPools = field(default_factory=RedisPools)
    limits: StoreLimits = field(default_factory=StoreLimits)
    session_api_target: str | None = None
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    @classmethod
    def from_env(cls, *, database_url: str, redis_url: str | None) -> ThreadStoreConfig:
        """Read the optional ``SWITCHBOARD_CACHE_*`` variables."""
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            cache_enabled=env_bool("SWITCHBOARD_CACHE", True),
            cache_ttl_seconds=env_float("SWITCHBOARD_CACHE_TTL_SECONDS", 600.0, minimum=1.0),
            cache_max_items=env_int("SWITCHBOARD_CACHE_MAX_ITEMS", 2000, minimum=0),
            pool_size=env_int("SWITCHBOARD_DB_POOL_SIZE", 10, minimum=1),
            redis_pools=RedisPools.from_env(),
            limits=StoreLimits.from_env(),
            session_api_target=env_str("SWITCHBOARD_SESSION_API"),
            retention=RetentionConfig.from_env(),
        )


async def build_thread_store(config: ThreadStoreConfig) -> tuple[GrpcServer, ThreadStoreService]:
    """Open pools and assemble the server (not started yet).

    Raises:
        InvalidArgument: authentication is on and ``SWITCHBOARD_INTERNAL_SECRET`` is missing or short.
    """
    auth = ServerAuth.from_env("thread_store", users=users_verifier(config.session_api_target))
    if config.migrate:
        await asyncio.to_thread(apply_migrations, config.database_url)
    pool = await create_pool(config.database_url, max_size=config.pool_size)
    queries = Queries.load(QUERIES_DIR)
    repository = ThreadRepository(pool, queries)
    cache: ThreadCache | None = None
    feed: ChangeFeed | None = None
    clients = []
    if config.redis_url:
        health = RedisHealth()
        client, blocking = create_service_redis(config.redis_url, config.redis_pools)
        clients = [client, blocking]
        if config.cache_enabled:
            cache = ThreadCache(
                client,
                health,
                ttl_seconds=config.cache_ttl_seconds,
                max_items=config.cache_max_items,
                codec=ThreadItemWireCodec(),
            )
        else:
            log.warning("SWITCHBOARD_CACHE=off: every read goes to Postgres")
        feed = ChangeFeed(client, blocking, health)
    else:
        log.warning("no REDIS_URL: the thread store runs without hot cache and change feed")
    service = ThreadStoreService(repository, cache, feed, config.limits)
    # Every replica runs the retention sweep; an advisory lock lets one sweep at a time (retention.py).
    sweeper = RetentionSweeper(pool, queries, config.retention, cache=cache, feed=feed)
    sweeping = asyncio.create_task(sweeper.run_forever()) if config.retention.every_seconds > 0 else None

    async def close() -> None:
        if sweeping is not None:
            sweeping.cancel()
            await asyncio.gather(sweeping, return_exceptions=True)
        if cache is not None:
            await cache.close()
        if feed is not None:
            await feed.close()
        for c in clients:
            await c.aclose()
        await pool.close()

    def register(server: grpc.aio.Server) -> None:
        add_servicer(server, ThreadStoreServicer(service), SERVICE, pass_through=frozenset({"ListItems"}))

    return GrpcServer(name=SERVICE_NAME, register=register, on_stop=close, auth=auth), service


async def serve(config: ThreadStoreConfig, *, host: str, port: int) -> None:
    """Run the thread store until SIGTERM/SIGINT."""
    server, service = await build_thread_store(config)
    # RPC counts and latency, cache hits and misses, Redis fallbacks; the change feed's lag at scrape time.
    register_collectors(*thread_store_collectors(service.feed))
    await server.serve_until_signalled(
        host, port, metrics_port=env_int("SWITCHBOARD_THREAD_STORE_METRICS_PORT", 0, minimum=0)
    )
