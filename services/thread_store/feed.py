"""The change feed: every committed write appends an event to Redis streams.

Streams: ``chat:user:{<user>}:thread:<id>:events`` (one thread, trimmed to the
last ``THREAD_STREAM_LENGTH`` events, expiring a day after its last write) and
``chat:org:{<org>}:events`` (every thread of an org, for operators). Postgres
stays the truth: the feed is for live views, and a write whose event cannot be
appended still succeeds; the event is retried in the background
(``switchboard.streams.StreamFeed``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import redis.asyncio as aioredis

from services.thread_store.domain import ChangeEvent
from services.thread_store.versions import thread_key
from switchboard.redis_health import RedisHealth
from switchboard.streams import FeedBacklog, FieldValue, Stream, StreamFeed

THREAD_STREAM_LENGTH = 1000
ORG_STREAM_LENGTH = 100_000
STREAM_TTL_SECONDS = 24 * 3600
MAX_EVENT_JSON = 64 * 1024  # bigger items travel without their JSON; watchers reload them


def org_stream(org_id: str) -> str:
    """The stream of every change in an org."""
    return f"chat:org:{{{org_id}}}:events"


def thread_stream(user_id: str, thread_id: str) -> str:
    """The stream of one thread's changes."""
    return thread_key(user_id, thread_id, "events")


class ChangeFeed:
    """Appends change events and lets watchers follow them.

    Args:
        client: Redis with short timeouts, for appends.
        blocking_client: Redis without a read timeout, for blocking XREADs.
        health: The breaker shared with the cache.
    """

    def __init__(self, client: aioredis.Redis, blocking_client: aioredis.Redis, health: RedisHealth) -> None:
        self._streams = StreamFeed(client, blocking_client, name="change feed", breaker=health)

    async def publish(
        self,
        *,
        type: str,
        user_id: str,
        org_id: str | None,
        thread_id: str,
        revision: int,
        item_id: str = "",
        body: bytes = b"",
    ) -> None:
        """Append an event (never raises; failures are retried in the background)."""
        fields: dict[str, FieldValue] = {
            "type": type,
            "thread_id": thread_id,
            "item_id": item_id,
            "user_id": user_id,
            "org_id": org_id or "",
            "revision": revision,
            "at": datetime.now(UTC).isoformat(),
            "json": body if len(body) <= MAX_EVENT_JSON else b"",
        }
        streams = [Stream(thread_stream(user_id, thread_id), THREAD_STREAM_LENGTH, STREAM_TTL_SECONDS)]
        if org_id:
            streams.append(Stream(org_stream(org_id), ORG_STREAM_LENGTH))
        await self._streams.append(streams, fields)

    async def watch(self, stream: str, *, since: str | None) -> AsyncIterator[ChangeEvent]:
        """Yield ``watch.started``, then the events of ``stream`` after it (after ``since``), forever.

        Raises:
            InvalidArgument: ``since`` is not an event id.
            Unavailable: Redis is unreachable; the watcher should reconnect with ``since``.
        """
        async for entry in self._streams.watch(stream, since=since):
            yield ChangeEvent.started(entry.id) if entry.started else _event(entry.id, entry.fields)

    def backlog(self) -> FeedBacklog:
        """Changes committed but not yet in Redis (Prometheus reads it at scrape time)."""
        return self._streams.backlog()

    async def close(self) -> None:
        """Stop the background retry."""
        await self._streams.close()


def _event(event_id: str, fields: Mapping[str, bytes]) -> ChangeEvent:
    return ChangeEvent(
        id=event_id,
        type=fields["type"].decode(),
        thread_id=fields["thread_id"].decode(),
        item_id=fields["item_id"].decode(),
        user_id=fields["user_id"].decode(),
        org_id=fields["org_id"].decode() or None,
        revision=int(fields["revision"]),
        at=datetime.fromisoformat(fields["at"].decode()),
        json=fields["json"],
    )
