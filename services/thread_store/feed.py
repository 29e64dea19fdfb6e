"""The change feed: every committed write appends an event to Redis streams.

Streams: ``chat:user:{<user>}:thread:<id>:events`` (one thread, trimmed to the
last ``THREAD_STREAM_LENGTH`` events, expiring a day after its last write) and
``chat:org:{<org>}:events`` (every thread of an org, for operators). Postgres
stays the truth: the feed is for live views, and a write whose event cannot be
appended still succeeds; the event is retried in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis

from services.thread_store.cache import RedisHealth, thread_key
from switchboard.errors import Unavailable

log = logging.getLogger(__name__)

THREAD_STREAM_LENGTH = 1000
ORG_STREAM_LENGTH = 100_000
STREAM_TTL_SECONDS = 24 * 3600
MAX_EVENT_JSON = 64 * 1024  # bigger items travel without their JSON; watchers reload them
PENDING_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to a thread or item."""

    id: str
    type: str
    thread_id: str
    item_id: str
    user_id: str
    org_id: str | None
    revision: int
    at: datetime
    json: bytes


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
        self._redis = client
        self._blocking = blocking_client
        self._health = health
        self._pending: deque[tuple[str, str | None, dict[str, Any]]] = deque(maxlen=PENDING_LIMIT)
        self._retry_task: asyncio.Task[None] | None = None

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
        fields: dict[str, Any] = {
            "type": type,
            "thread_id": thread_id,
            "item_id": item_id,
            "user_id": user_id,
            "org_id": org_id or "",
            "revision": revision,
            "at": datetime.now(UTC).isoformat(),
            "json": body if len(body) <= MAX_EVENT_JSON else b"",
        }
        if self._health.available:
            try:
                await self._append(user_id, org_id, fields)
                return
            except Exception as error:
                self._health.failed("feed", error)
        self._pending.append((user_id, org_id, fields))
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.get_running_loop().create_task(self._retry(), name="feed-retry")

    async def _append(self, user_id: str, org_id: str | None, fields: dict[str, Any]) -> None:
        stream = thread_stream(user_id, fields["thread_id"])
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, fields, maxlen=THREAD_STREAM_LENGTH, approximate=True)  # type: ignore[arg-type]
            pipe.expire(stream, STREAM_TTL_SECONDS)
            if org_id:
                pipe.xadd(org_stream(org_id), fields, maxlen=ORG_STREAM_LENGTH, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()

    async def _retry(self) -> None:
        while self._pending:
            await asyncio.sleep(0.2)
            if not self._health.available:
                continue
            user_id, org_id, fields = self._pending[0]
            try:
                await self._append(user_id, org_id, fields)
            except Exception as error:
                self._health.failed("feed-retry", error)
                continue
            self._pending.popleft()

    async def watch(self, stream: str, *, since: str | None, block_ms: int = 5000) -> AsyncIterator[ChangeEvent]:
        """Yield the events of ``stream`` after ``since`` (or only new ones), forever.

        Raises:
            Unavailable: Redis is unreachable; the watcher should reconnect with ``since``.
        """
        last = since or "$"
        while True:
            try:
                reply: Any = await self._blocking.xread({stream: last}, block=block_ms, count=100)
            except redis.RedisError as error:
                raise Unavailable(f"the change feed is unavailable ({type(error).__name__}); retry shortly") from None
            for _stream, entries in reply or ():
                for event_id, fields in entries:
                    last = event_id.decode()
                    yield _event(last, fields)

    async def close(self) -> None:
        """Stop the retry task."""
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task


def _event(event_id: str, fields: dict[bytes, bytes]) -> ChangeEvent:
    text = {k.decode(): v for k, v in fields.items()}
    return ChangeEvent(
        id=event_id,
        type=text["type"].decode(),
        thread_id=text["thread_id"].decode(),
        item_id=text["item_id"].decode(),
        user_id=text["user_id"].decode(),
        org_id=text["org_id"].decode() or None,
        revision=int(text["revision"]),
        at=datetime.fromisoformat(text["at"].decode()),
        json=text["json"],
    )


def describe(event: ChangeEvent) -> str:
    """A one-line description for logs."""
    return json.dumps({"id": event.id, "type": event.type, "thread": event.thread_id, "item": event.item_id})
