"""Live session and escalation changes through Redis, so every replica sees every change.

Each change is appended to two streams: the session user's
(``chat:user:{<user>}:sessions:events``) and, when the session has an org, the
org's (``chat:org:{<org>}:sessions:events``, which the operator console
follows). Streams are trimmed and expire, since Postgres stays the truth.

Cancelling or ending a session also publishes its id on a pub/sub channel, so
every replica forgets the session's client secret at once rather than after
its status cache expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis

from services.session_api.domain import Escalation, Session, SessionChange
from switchboard.redis_client import open_pubsub
from switchboard.streams import WATCH_STARTED, Attempt, FeedBacklog, Stream, StreamFeed, reconnecting

log = logging.getLogger(__name__)

STREAM_LENGTH = 10_000
STREAM_TTL_SECONDS = 7 * 24 * 3600
REVOKED_CHANNEL = "chat:sessions:revoked"


def user_stream(user_id: str) -> str:
    """The changes of one user's sessions."""
    return f"chat:user:{{{user_id}}}:sessions:events"


def org_stream(org_id: str) -> str:
    """The changes of every session of an org."""
    return f"chat:org:{{{org_id}}}:sessions:events"


class SessionFeed:
    """Publishes changes and revocations and lets watchers follow them.

    Args:
        client: Redis with short timeouts, for appends.
        blocking_client: Redis without a short read timeout, for blocking reads and pub/sub.
    """

    def __init__(self, client: aioredis.Redis, blocking_client: aioredis.Redis) -> None:
        self._redis = client
        self._blocking = blocking_client
        self._streams = StreamFeed(client, blocking_client, name="session feed")
        self._listener: asyncio.Task[None] | None = None

    async def publish(self, type: str, subject: Session | Escalation) -> None:
        """Append a change to its user's and org's streams (never raises; retried in the background)."""
        kind = "session" if isinstance(subject, Session) else "escalation"
        fields = {
            "type": type,
            "at": datetime.now(UTC).isoformat(),
            "kind": kind,
            "json": json.dumps(subject.to_dict(), separators=(",", ":")),
        }
        streams = [Stream(user_stream(subject.user_id), STREAM_LENGTH, STREAM_TTL_SECONDS)]
        if subject.org_id:
            streams.append(Stream(org_stream(subject.org_id), STREAM_LENGTH, STREAM_TTL_SECONDS))
        await self._streams.append(streams, fields)

    async def revoke(self, session_id: str) -> None:
        """Tell every replica that a session's client secrets are dead (never raises)."""
        try:
            await self._redis.publish(REVOKED_CHANNEL, session_id)
        except (redis.RedisError, OSError) as error:
            log.warning(
                "revocation of session %s not published (%s): replicas notice within their TTL", session_id, error
            )

    def listen_for_revocations(self, on_revoked: Callable[[str], None], on_reconnect: Callable[[], None]) -> None:
        """Call ``on_revoked`` with each revoked session id, in the background, until ``close``.

        ``on_reconnect`` runs after the subscription was lost and re-established
        (revocations may have been missed meanwhile).
        """
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(on_revoked, on_reconnect), name="session-revocations"
        )

    async def _listen(self, on_revoked: Callable[[str], None], on_reconnect: Callable[[], None]) -> None:
        async def follow(attempt: Attempt) -> None:
            async with await open_pubsub(self._blocking) as pubsub:
                await pubsub.subscribe(REVOKED_CHANNEL)
                if attempt.failures:
                    on_reconnect()
                attempt.live()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        data: Any = message["data"]
                        on_revoked(data.decode() if isinstance(data, bytes) else str(data))

        await reconnecting(follow, name="session revocation listener", retry_on=(Exception,))

    async def watch(self, stream: str, *, since: str | None) -> AsyncIterator[SessionChange]:
        """Yield ``watch.started``, then the changes of ``stream`` after it (after ``since``), forever.

        Raises:
            InvalidArgument: ``since`` is not a change id.
            Unavailable: Redis is unreachable; the watcher should come back with ``since``.
        """
        async for entry in self._streams.watch(stream, since=since):
            if entry.started:
                yield SessionChange(id=entry.id, type=WATCH_STARTED, at=datetime.now(UTC))
            elif (change := _change(entry.id, entry.fields)) is not None:
                yield change

    def backlog(self) -> FeedBacklog:
        """Changes committed but not yet in Redis (Prometheus reads it at scrape time)."""
        return self._streams.backlog()

    async def close(self) -> None:
        """Stop the revocation listener and the background retry."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._streams.close()


def _change(change_id: str, fields: Mapping[str, bytes]) -> SessionChange | None:
    try:
        text = {k: v.decode() for k, v in fields.items()}
        data: dict[str, Any] = json.loads(text["json"])
        subject: dict[str, Any] = {}
        if text["kind"] == "session":
            subject["session"] = Session.from_dict(data)
        else:
            subject["escalation"] = Escalation.from_dict(data)
        return SessionChange(id=change_id, type=text["type"], at=datetime.fromisoformat(text["at"]), **subject)
    except (KeyError, ValueError, TypeError) as error:
        log.warning("session change %s skipped: unreadable (%s)", change_id, error)
        return None
