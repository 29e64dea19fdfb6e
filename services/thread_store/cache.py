"""The Redis hot cache of threads and their items.

Keys (the braces are a literal Redis Cluster hash tag: one user, one slot):

- ``chat:user:{<user>}:thread:<id>:state`` hash: ``rev`` (the thread revision
  the cache reflects), ``meta`` (the encoded thread), ``loaded`` (all items
  cached, in the codec's ``format``: items cached in another format are a miss)
- ``chat:user:{<user>}:thread:<id>:items`` hash: item id -> encoded item
- ``chat:user:{<user>}:thread:<id>:order`` sorted set: item ids by creation time

Consistency without locks: Postgres bumps a thread's ``revision`` on every
write to the thread or its items, under the thread's row lock, so revisions
follow commit order. A write is patched into the cache only when the cache is
at exactly the previous revision; otherwise the cached items are dropped. A
fill (after a miss) is refused when the cache already reflects a newer
revision. A delete leaves a tombstone revision so that a slow fill cannot bring
the thread back. When Redis fails during a write, the thread is remembered and
invalidated as soon as Redis answers again (tried every ``REPAIR_INTERVAL``);
until then this replica reads from Postgres only, while other readers of the
same Redis (other replicas, ``GrpcThreadStore`` revalidating a held page) may
still see the state before the write. Redis never holds anything Postgres lacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter

from services.thread_store.domain import AGENT, EncodedItems, Handler, ItemRecord, Order, ThreadRecord
from services.thread_store.versions import VERSION_LUA, thread_key
from switchboard.errors import InvalidArgument
from switchboard.redis_health import RedisHealth

log = logging.getLogger(__name__)

CACHE_LOOKUPS = Counter("switchboard_thread_cache_lookups_total", "Thread cache lookups.", ["kind", "result"])
_ITEMS_HIT = CACHE_LOOKUPS.labels("items", "hit")
_ITEMS_MISS = CACHE_LOOKUPS.labels("items", "miss")

# Seconds between tries of invalidating what failed cache writes left in Redis.
REPAIR_INTERVAL = 0.1
# A tombstone: larger than any real revision, so no fill is accepted after a delete.
TOMBSTONE_REVISION = 2**53 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A page, with the version of the thread it reflects; {-2} alone when that
# version is ARGV[5] (the caller's page is current: a conditional read).
_PAGE = (
    """
if redis.call('HGET', KEYS[1], 'loaded') ~= ARGV[4] then return nil end
"""
    + VERSION_LUA
    + """
if version ~= '' and ARGV[5] == version then return {-2} end
local n = tonumber(ARGV[2])
local start = 0
local asc = ARGV[3] == 'asc'
if ARGV[1] ~= '' then
  local r
  if asc then r = redis.call('ZRANK', KEYS[3], ARGV[1]) else r = redis.call('ZREVRANK', KEYS[3], ARGV[1]) end
  if not r then return {-1} end
  start = r + 1
end
local ids
if asc then
  ids = redis.call('ZRANGE', KEYS[3], start, start + n)
else
  ids = redis.call('ZREVRANGE', KEYS[3], start, start + n)
end
local more = 0
if #ids > n then more = 1; table.remove(ids) end
if #ids == 0 then return {more, '', version} end
local vals = redis.call('HMGET', KEYS[2], unpack(ids))
local out = {more, ids[#ids], version}
for i = 1, #vals do out[i + 3] = vals[i] end
return out
"""
)

_FILL = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'rev'))
local rev = tonumber(ARGV[1])
if cur and cur > rev then return 0 end
if cur and cur == rev and redis.call('HGET', KEYS[1], 'loaded') == ARGV[5] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[1], 'loaded')
redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'meta', ARGV[2])
if ARGV[4] == '1' then
  for i = 6, #ARGV, 3 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
  end
  redis.call('HSET', KEYS[1], 'loaded', ARGV[5])
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
"""

_APPLY = """
local rev = tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'rev'))
local created = ARGV[8] == '1'
if created then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  cur = nil
end
if cur and cur >= rev then return 0 end
local patch = cur and cur == rev - 1 and redis.call('HGET', KEYS[1], 'loaded') == ARGV[9]
redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'meta', ARGV[2])
if patch then
  if ARGV[4] == 'put' then
    redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
    redis.call('ZADD', KEYS[3], ARGV[7], ARGV[5])
  elseif ARGV[4] == 'del' then
    redis.call('HDEL', KEYS[2], ARGV[5])
    redis.call('ZREM', KEYS[3], ARGV[5])
  end
else
  redis.call('DEL', KEYS[2], KEYS[3])
  if created then redis.call('HSET', KEYS[1], 'loaded', ARGV[9]) else redis.call('HDEL', KEYS[1], 'loaded') end
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
"""

_INVALIDATE = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'rev'))
local rev = tonumber(ARGV[1])
if cur and cur >= rev and rev ~= tonumber(ARGV[3]) then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[1], 'meta', 'loaded')
redis.call('HSET', KEYS[1], 'rev', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MICRO


_ONE_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _from_micros(value: int) -> datetime:
    return _EPOCH + value * _ONE_MICRO


class ItemCodec(Protocol):
    """How items are stored in the cache: the transport's wire form, so hot reads skip re-encoding.

    ``format`` names the encoding: items cached in another one (by an older
    release) are a miss and are refilled from Postgres, never served.
    """

    @property
    def format(self) -> str:
        """The name of this encoding (not ``"1"``: that is the one before items carried their author)."""
        ...

    def encode(self, item: ItemRecord) -> bytes:
        """The cached bytes of an item."""
        ...


def encode_thread(thread: ThreadRecord) -> bytes:
    """A JSON header of the indexed fields, NUL, then the ChatKit JSON untouched."""
    header: dict[str, Any] = {
        "id": thread.id,
        "user_id": thread.user_id,
        "org_id": thread.org_id,
        "scope": thread.scope,
        "title": thread.title,
        "status": thread.status,
        "created_at": _micros(thread.created_at),
        "updated_at": _micros(thread.updated_at),
        "revision": thread.revision,
    }
    if thread.handler != AGENT:
        handler = thread.handler
        header["handler"] = {
            "kind": handler.kind,
            "operator_id": handler.operator_id,
            "escalation_id": handler.escalation_id,
            "since": _micros(handler.since) if handler.since is not None else None,
            "until": _micros(handler.until) if handler.until is not None else None,
        }
    return json.dumps(header, separators=(",", ":")).encode() + b"\x00" + thread.json


def _decode_handler(h: dict[str, Any] | None) -> Handler:
    # Threads cached before the hand-off existed have no handler: they were all the agent's.
    if h is None:
        return AGENT
    return Handler(
        kind=h["kind"],
        operator_id=h["operator_id"],
        escalation_id=h["escalation_id"],
        since=_from_micros(h["since"]) if h["since"] is not None else None,
        until=_from_micros(h["until"]) if h["until"] is not None else None,
    )


def decode_thread(raw: bytes) -> ThreadRecord:
    """Inverse of ``encode_thread``."""
    head, body = raw.split(b"\x00", 1)
    h = json.loads(head)
    return ThreadRecord(
        id=h["id"],
        user_id=h["user_id"],
        org_id=h["org_id"],
        scope=h["scope"],
        title=h["title"],
        status=h["status"],
        json=body,
        created_at=_from_micros(h["created_at"]),
        updated_at=_from_micros(h["updated_at"]),
        revision=h["revision"],
        handler=_decode_handler(h.get("handler")),
    )


ItemOp = Literal["put", "del", "none"]


class ThreadCache:
    """Write-through cache of thread metadata and items, safe under concurrent writers.

    Args:
        client: The Redis client (short timeouts).
        health: The breaker shared with the change feed.
        ttl_seconds: How long an untouched thread stays cached.
        max_items: Threads with more items cache their metadata only.
        codec: How items are stored; the server passes the protobuf wire form.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        health: RedisHealth,
        *,
        ttl_seconds: float = 600.0,
        max_items: int = 2000,
        codec: ItemCodec,
    ) -> None:
        self._redis = client
        self._codec = codec
        self._health = health
        self._ttl_ms = int(ttl_seconds * 1000)
        self.max_items = max_items
        self._page = client.register_script(_PAGE)
        self._fill = client.register_script(_FILL)
        self._apply = client.register_script(_APPLY)
        self._invalidate = client.register_script(_INVALIDATE)
        # (user, thread) -> revision whose cache update failed; repaired when Redis returns.
        self._pending: dict[tuple[str, str], int] = {}
        self._repair_task: asyncio.Task[None] | None = None

    @property
    def readable(self) -> bool:
        """Whether reads may use the cache: Redis is up and no repair is pending."""
        return self._health.available and not self._pending

    @staticmethod
    def _keys(user_id: str, thread_id: str) -> list[str]:
        return [thread_key(user_id, thread_id, p) for p in ("state", "items", "order")]

    async def get_thread(self, *, user_id: str, thread_id: str) -> ThreadRecord | None:
        """The cached thread, or None on a miss (or when Redis is unusable)."""
        if not self.readable:
            return None
        try:
            raw = await self._redis.hget(thread_key(user_id, thread_id, "state"), "meta")
        except Exception as error:  # any Redis failure degrades to Postgres
            self._health.failed("get_thread", error)
            return None
        CACHE_LOOKUPS.labels("thread", "hit" if raw else "miss").inc()
        return decode_thread(raw) if isinstance(raw, bytes) else None

    async def page_items(
        self,
        *,
        user_id: str,
        thread_id: str,
        after: str | None,
        limit: int,
        order: Order,
        if_none_match: str | None = None,
    ) -> EncodedItems | None:
        """A page of cached items in the codec's form, or None on a miss.

        The page carries the ``version`` of the thread it reflects: its revision
        and a digest of its cached record. Items and record change together with
        the revision in one script (``_APPLY``, ``_FILL``), so one version is one
        page for given ``after``/``limit``/``order``; the digest covers the
        record's server-set activity time, so a thread deleted and created again
        under the same id (its revisions start over) never repeats a version.
        With ``if_none_match`` equal to the current version the page is
        ``not_modified`` instead, decided in the same atomic script as the page
        itself: exactly when this read would have returned the caller's page.

        Raises:
            InvalidArgument: ``after`` is not an item of the (fully cached) thread.
        """
        if not self.readable:
            return None
        try:
            reply = await self._page(
                keys=self._keys(user_id, thread_id),
                args=[after or "", limit, order, self._codec.format, if_none_match or ""],
            )
        except Exception as error:
            self._health.failed("page_items", error)
            return None
        if reply is None:
            _ITEMS_MISS.inc()
            return None
        _ITEMS_HIT.inc()
        if reply[0] == -2:
            return EncodedItems(blobs=[], has_more=False, after=None, version=if_none_match or "", not_modified=True)
        if reply[0] == -1:
            raise InvalidArgument(f"cursor {after!r} is not an item of thread {thread_id!r}")
        # [has_more, last id, version, item...]: the page's other ids are not needed, so they are not sent.
        has_more = reply[0] == 1
        blobs = reply[3:]
        last_id = reply[1].decode() if has_more and blobs else None
        return EncodedItems(blobs=blobs, has_more=has_more, after=last_id, version=reply[2].decode())

    async def fill(self, *, thread: ThreadRecord, items: list[ItemRecord] | None) -> None:
        """Cache a snapshot read from Postgres, unless the cache already reflects a newer one."""
        if not self.readable:
            return
        args: list[Any] = [
            thread.revision,
            encode_thread(thread),
            self._ttl_ms,
            1 if items is not None else 0,
            self._codec.format,
        ]
        for item in items or ():
            args += [item.id, self._codec.encode(item), _micros(item.created_at)]
        try:
            await self._fill(keys=self._keys(thread.user_id, thread.id), args=args)
        except Exception as error:
            self._health.failed("fill", error)

    async def apply(
        self,
        *,
        thread: ThreadRecord,
        op: ItemOp = "none",
        item: ItemRecord | None = None,
        item_id: str = "",
        created: bool = False,
    ) -> None:
        """Write a committed change through to the cache (never raises)."""
        args: list[Any] = [thread.revision, encode_thread(thread), self._ttl_ms, op]
        if item is not None:
            args += [item.id, self._codec.encode(item), _micros(item.created_at)]
        else:
            args += [item_id, "", 0]
        args += ["1" if created else "0", self._codec.format]
        await self._write(thread.user_id, thread.id, thread.revision, self._apply, args)

    async def forget(self, *, user_id: str, thread_id: str) -> None:
        """Drop a deleted thread, leaving a tombstone (never raises)."""
        await self._write(
            user_id,
            thread_id,
            TOMBSTONE_REVISION,
            self._invalidate,
            [TOMBSTONE_REVISION, self._ttl_ms, TOMBSTONE_REVISION],
        )

    async def suspect(self, *, user_id: str, thread_id: str) -> None:
        """A write to the thread failed with its outcome unknown (storage cut mid-write, perhaps
        after its commit): drop what Redis holds of the thread, so every reader (this replica,
        the others, clients revalidating held pages) reads Postgres and refills. Never raises;
        with Redis failing too, the breaker already sends this replica's reads to Postgres."""
        if not self._health.available:
            return
        try:
            await self._redis.delete(*self._keys(user_id, thread_id))
        except Exception as error:
            self._health.failed("write", error)

    async def _write(self, user_id: str, thread_id: str, revision: int, script: Any, args: list[Any]) -> None:
        if self._health.available:
            try:
                await script(keys=self._keys(user_id, thread_id), args=args)
                return
            except Exception as error:
                self._health.failed("write", error)
        # The cache may now hold an older revision: invalidate it when Redis is back.
        key = (user_id, thread_id)
        self._pending[key] = max(self._pending.get(key, 0), revision)
        self._ensure_repair()

    def _ensure_repair(self) -> None:
        if self._repair_task is None or self._repair_task.done():
            self._repair_task = asyncio.get_running_loop().create_task(self._repair(), name="thread-cache-repair")

    async def _repair(self) -> None:
        while self._pending:
            # Not the breaker's cool-down: until the repair lands, every other reader of this
            # Redis (other replicas, clients revalidating held pages) sees what the failed write left.
            await asyncio.sleep(REPAIR_INTERVAL)
            for (user_id, thread_id), revision in list(self._pending.items()):
                try:
                    await self._invalidate(
                        keys=self._keys(user_id, thread_id), args=[revision, self._ttl_ms, TOMBSTONE_REVISION]
                    )
                except Exception as error:
                    self._health.failed("repair", error)
                    break
                if self._pending.get((user_id, thread_id)) == revision:
                    del self._pending[(user_id, thread_id)]
        log.info("thread cache repaired; reading from Redis again")

    async def close(self) -> None:
        """Stop the repair task."""
        if self._repair_task is not None:
            self._repair_task.cancel()
