"""A thread's version in Redis: what a hot page of its items carries, and how a client holding one checks it.

The cache (``services.thread_store.cache``) keeps a thread's state in the hash
``chat:user:{<user>}:thread:<id>:state``: ``rev``, the thread's revision, and
``meta``, its encoded record. A version is ``<rev>:<sha1 of meta>``. Every write
bumps the revision in Postgres and writes the new state through to Redis
before it is acknowledged (the cache's scripts change items, record and
revision together), so the version a thread has in Redis names exactly one
state, and one page for given ``after``/``limit``/``order``; the digest covers
the record's server-set activity time, so a thread deleted and created again
under the same id (its revisions start over) never repeats a version.

The thread store's ``ListItems`` answers "not modified" when the caller's
version is the current one; ``GrpcThreadStore`` may ask Redis the same
question itself (``ThreadVersions``) and skip the call. Both read the same
hash with the same script, so a page current for one is current for the other:
a write acknowledged by any replica before the check has changed the version.

One exception, shared with every replica of the thread store: when Redis fails
during a write (down, hung, cut off from that replica), the replica reads from
Postgres until its repair has invalidated the thread in Redis (it retries every
``cache.REPAIR_INTERVAL`` once Redis answers it again); meanwhile other
replicas, and clients checking here, may see the version from before the write.
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from switchboard.redis_client import RedisPools, create_redis
from switchboard.redis_health import RedisHealth

VERSION_LUA = """
local state = redis.call('HMGET', KEYS[1], 'rev', 'meta')
local version = ''
if state[1] and state[2] then version = state[1] .. ':' .. redis.sha1hex(state[2]) end
"""
"""Lua that sets ``version`` to the version of the thread whose state hash is ``KEYS[1]`` ('' when it has none)."""

_CURRENT = VERSION_LUA + "return version\n"


def thread_key(user_id: str, thread_id: str, part: str) -> str:
    """The Redis key of one part of a user's thread."""
    return f"chat:user:{{{user_id}}}:thread:{thread_id}:{part}"


class ThreadVersions:
    """Reads threads' current versions from the thread store's Redis: one round trip, one key.

    Safe to construct at import time: a Redis client opens on first use, one per
    event loop. A failing Redis is no error: ``current`` says None (the caller
    asks the thread store instead), and Redis is left alone for a second.

    Args:
        url: The Redis the thread store caches in (``REDIS_URL`` of the deployment).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._health = RedisHealth()
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[aioredis.Redis, AsyncScript]] = (
            weakref.WeakKeyDictionary()
        )

    def _script(self) -> AsyncScript:
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None:
            pools = RedisPools.from_env()  # bounded, as the services' own: a burst waits for a connection
            client = create_redis(self.url, pool_size=pools.size, pool_wait=pools.wait_seconds)
            entry = self._by_loop[loop] = (client, client.register_script(_CURRENT))
        return entry[1]

    async def current(self, *, user_id: str, thread_id: str) -> str | None:
        """The thread's version now ('' when Redis holds none), or None when Redis cannot say."""
        if not self._health.available:
            return None
        try:
            reply = await self._script()(keys=[thread_key(user_id, thread_id, "state")])
        except Exception as error:  # any Redis failure: the thread store answers instead
            self._health.failed("thread_version", error)
            return None
        return reply.decode() if isinstance(reply, bytes) else str(reply or "")

    async def close(self) -> None:
        """Close this loop's Redis client."""
        entry = self._by_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()
