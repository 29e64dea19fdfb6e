"""Handler of ``switchboard retention`` (declared in ``switchboard.cli``): sweep now (or dry),
set an org's policy, and put threads or users on legal hold. It works on the storage directly
(``DATABASE_URL`` / ``REDIS_URL``), as ``threads export`` does."""

from __future__ import annotations

import argparse
import asyncio
import getpass

from services.thread_store.cache import ThreadCache
from services.thread_store.feed import ChangeFeed
from services.thread_store.repository import QUERIES_DIR
from services.thread_store.retention import RetentionConfig, RetentionSweeper
from services.thread_store.servicer import ThreadItemWireCodec
from switchboard.errors import InvalidArgument
from switchboard.redis_client import RedisPools, create_service_redis
from switchboard.redis_health import RedisHealth
from switchboard.sql import Queries, create_pool


def retention_command(args: argparse.Namespace) -> int:
    """``switchboard retention sweep|policy|policies|hold|release|holds``."""
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        return asyncio.run(_run(args, urls.database_url, urls.redis_url))


def _optional_days(value: str | None, flag: str) -> int | None:
    if value is None or value == "default":
        return None
    if not value.isdigit():
        raise InvalidArgument(f"{flag} is a number of days (0: keep forever) or 'default'")
    return int(value)


async def _run(args: argparse.Namespace, database_url: str, redis_url: str | None) -> int:
    pool = await create_pool(database_url, max_size=2)
    clients = []
    cache = feed = None
    if redis_url:
        health = RedisHealth()
        client, blocking = create_service_redis(redis_url, RedisPools())
        clients = [client, blocking]
        cache = ThreadCache(client, health, codec=ThreadItemWireCodec())
        feed = ChangeFeed(client, blocking, health)
    sweeper = RetentionSweeper(pool, Queries.load(QUERIES_DIR), RetentionConfig.from_env(), cache=cache, feed=feed)
    try:
        if args.action == "sweep":
            report = await sweeper.sweep(dry_run=args.dry_run)
            print(report.summary())
            if args.dry_run:
                for thread_id in report.threads:
                    print(f"  thread {thread_id}")
        elif args.action == "policy":
            if not args.org:
                raise InvalidArgument("name the org: --org ORG")
            policy = await sweeper.set_policy(
                org_id=args.org,
                thread_days=_optional_days(args.thread_days, "--thread-days"),
                audit_days=_optional_days(args.audit_days, "--audit-days"),
            )
            print(f"org {policy.org_id}: threads {_describe(policy.thread_days)}, audit {_describe(policy.audit_days)}")
        elif args.action == "policies":
            for p in await sweeper.list_policies():
                print(f"{p.org_id}\tthreads {_describe(p.thread_days)}\taudit {_describe(p.audit_days)}")
        elif args.action in ("hold", "release"):
            if (args.thread is None) == (args.user is None):
                raise InvalidArgument("name one thread (--thread ID) or one user (--user ID)")
            if args.action == "hold":
                await sweeper.hold(
                    thread_id=args.thread, user_id=args.user, reason=args.reason, created_by=getpass.getuser()
                )
                print(f"held {'thread ' + args.thread if args.thread else 'user ' + args.user}: never swept")
            else:
                await sweeper.release(thread_id=args.thread, user_id=args.user)
                print("released")
        elif args.action == "holds":
            for h in await sweeper.list_holds():
                what = f"thread {h.thread_id}" if h.thread_id else f"user {h.user_id}"
                print(f"{what}\t{h.created_at:%Y-%m-%d}\t{h.created_by}\t{h.reason}")
    finally:
        if cache is not None:
            await cache.close()
        if feed is not None:
            await feed.close()
        for c in clients:
            await c.aclose()
        await pool.close()
    return 0


def _describe(days: int | None) -> str:
    if days is None:
        return "the deployment default"
    return "kept forever" if days == 0 else f"{days} days"
