"""Following things that can go away: Redis stream feeds, and the one way Switchboard reconnects.

- ``StreamFeed`` appends entries to Redis streams (trimmed, expiring) and lets
  watchers follow a stream from a resumable id. An append never fails its
  caller: when Redis does not take it, it is queued and appended in the
  background, in order. A watch first yields a ``started`` marker, once the
  reader is positioned: every entry appended after the marker reaches the
  watcher, and the marker's id is where to resume.
- ``reconnecting`` runs a follower (a subscription, a watch, a retry queue) for
  as long as it fails with errors worth retrying, waiting ``Backoff`` between
  tries: tenacity's exponential back-off with full jitter, so replicas that lost
  Redis together do not come back in lockstep.

Both services' change feeds, the agent runner's signal channel and the
console's watches use these; nothing else waits and retries by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
import tenacity
from redis.exceptions import RedisError

from switchboard.errors import InvalidArgument, Unavailable

log = logging.getLogger(__name__)

WATCH_STARTED = "watch.started"
"""The type services give the ``started`` marker of a watch (it carries no subject; its id is the resume point)."""

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
"""What a failing Redis raises (connection loss, timeouts, refused commands)."""

_STREAM_ID = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")
_MAX_ID_PART = 2**64 - 1


# -- back-off and reconnecting ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before trying again: exponential, with full jitter, bounded.

    The wait after the n-th failure in a row is drawn uniformly between
    ``floor`` and ``min(limit, first * 2 ** (n - 1))`` (tenacity's
    ``wait_random_exponential``, the "full jitter" policy).

    Args:
        first: The widest wait after the first failure (seconds).
        limit: No wait is longer than this.
        floor: No wait is shorter than this, so a dead peer is never hammered.
    """

    first: float = 0.2
    limit: float = 2.0
    floor: float = 0.05

    def wait(self) -> tenacity.wait.wait_base:
        """The policy as a tenacity wait strategy."""
        return tenacity.wait_random_exponential(multiplier=self.first, max=self.limit, min=self.floor)


RECONNECT = Backoff()
"""The back-off every reconnect loop uses."""


@dataclass(frozen=True, slots=True)
class Lost:
    """A follower failed; ``reconnecting`` tries again after ``delay`` seconds."""

    error: BaseException
    failures: int  # in a row, since the follower was last live (1 after the first)
    delay: float


class Attempt:
    """One try of a ``reconnecting`` loop, as the follower sees it."""

    def __init__(self, state: tenacity.RetryCallState) -> None:
        self._state = state

    @property
    def failures(self) -> int:
        """Failed tries since the follower was last live (0 on the very first try)."""
        return self._state.attempt_number - 1

    def live(self) -> None:
        """Say the connection works: the next failure waits the back-off's first, shortest window again."""
        # tenacity counts attempts from the start of the loop; a loop that runs for
        # days must count only the failures since it last worked.
        self._state.attempt_number = 1


async def reconnecting(
    follow: Callable[[Attempt], Awaitable[None]],
    *,
    name: str,
    retry_on: tuple[type[BaseException], ...] = REDIS_ERRORS,
    fatal: tuple[type[BaseException], ...] = (),
    on_lost: Callable[[Lost], Awaitable[None] | None] | None = None,
    backoff: Backoff = RECONNECT,
) -> None:
    """Run ``follow`` until it returns, starting it again after each failure worth retrying.

    ``follow`` connects, calls ``attempt.live()`` once it works, then follows
    until it fails. After an exception in ``retry_on`` (and not in ``fatal``)
    ``on_lost`` runs, the back-off passes and ``follow`` starts again; any
    other exception, and cancellation, ends the loop and propagates.

    Args:
        follow: One connection's worth of work.
        name: What is followed, for logs ("run signal channel").
        retry_on: Exceptions after which to reconnect.
        fatal: Exceptions (even of a ``retry_on`` type) after which to give up.
        on_lost: Told of each failure before the wait (may be async).
        backoff: The wait between tries.
    """

    async def report(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        error = state.outcome.exception()
        assert error is not None
        lost = Lost(error=error, failures=state.attempt_number, delay=state.upcoming_sleep)
        if lost.failures == 1:
            log.warning("%s failed (%s: %s); trying again with back-off", name, type(error).__name__, error)
        else:
            log.debug("%s failed %d times in a row; next try in %.2f s", name, lost.failures, lost.delay)
        if on_lost is not None:
            reported = on_lost(lost)
            if inspect.isawaitable(reported):
                await reported

    retry: tenacity.retry_base = tenacity.retry_if_exception_type(retry_on)
    if fatal:
        retry = retry & tenacity.retry_if_not_exception_type(fatal)
    retrying = tenacity.AsyncRetrying(
        wait=backoff.wait(), retry=retry, stop=tenacity.stop_never, before_sleep=report, reraise=True
    )
    async for attempt in retrying:
        with attempt:
            await follow(Attempt(attempt.retry_state))


# -- Redis stream feeds --------------------------------------------------------------------


def check_stream_id(value: str, *, what: str = "since") -> str:
    """``value`` if it is a Redis stream id (``1700000000000-0``, or just the milliseconds).

    Raises:
        InvalidArgument: it is not one, or a part is past Redis's 64-bit range.
    """
    match = _STREAM_ID.fullmatch(value)
    if match is None or any(int(part) > _MAX_ID_PART for part in match.groups() if part is not None):
        raise InvalidArgument(f"{what} {value[:40]!r} is not a change id like '1700000000000-0'")
    return value


@dataclass(frozen=True, slots=True)
class Stream:
    """Where an entry goes: a stream key, how many entries it keeps, and how long it outlives its last append."""

    key: str
    max_entries: int
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """An entry of a stream, or (``started``) the marker that a watch is positioned.

    The marker has no fields; its id is the position the watch reads after.
    """

    id: str
    fields: Mapping[str, bytes]
    started: bool = False


class Breaker(Protocol):
    """A circuit breaker shared with other users of the same Redis (a cache), if any."""

    @property
    def available(self) -> bool:
        """Whether Redis may be tried now."""
        ...

    def failed(self, op: str, error: BaseException) -> None:
        """Record a failure."""
        ...


FieldValue = str | bytes | int


@dataclass(frozen=True, slots=True)
class FeedBacklog:
    """What a feed owes Redis: entries committed (Postgres has them) but not yet appended.

    Attributes:
        entries: Entries waiting for the background retry.
        oldest_seconds: How long the oldest of them has waited (0 when none): how far live views are behind.
        dropped: Entries given up since start (the queue was full): watchers never saw them.
    """

    entries: int
    oldest_seconds: float
    dropped: int


class StreamFeed:
    """Appends entries to Redis streams and follows them.

    Postgres stays the truth: a feed is for live views. Appends are at least
    once (an entry retried after a lost reply may appear twice), so watchers
    apply entries as idempotent upserts.

    Args:
        client: Redis with short timeouts, for appends.
        reader: Redis whose read timeout outlasts ``block_ms``, for blocking reads.
        name: What the feed is called in errors and logs ("change feed").
        breaker: A breaker shared with a cache; appends skip Redis while it is open.
        max_pending: Entries kept for the background retry (the oldest are dropped past it).
        backoff: The wait between background retries.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        reader: aioredis.Redis,
        *,
        name: str,
        breaker: Breaker | None = None,
        max_pending: int = 10_000,
        backoff: Backoff = RECONNECT,
    ) -> None:
        self.name = name
        self._redis = client
        self._reader = reader
        self._breaker = breaker
        self._backoff = backoff
        # Each entry with the monotonic time it was queued, for backlog().
        self._pending: deque[tuple[Sequence[Stream], Mapping[str, FieldValue], float]] = deque(maxlen=max_pending)
        self._dropped = 0
        self._retry_task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Entries waiting for the background retry."""
        return len(self._pending)

    def backlog(self) -> FeedBacklog:
        """Entries waiting for Redis and the age of the oldest (safe to call from another thread: a scrape)."""
        try:
            queued_at = self._pending[0][2]
        except IndexError:
            return FeedBacklog(entries=0, oldest_seconds=0.0, dropped=self._dropped)
        return FeedBacklog(
            entries=len(self._pending), oldest_seconds=max(0.0, time.monotonic() - queued_at), dropped=self._dropped
        )

    async def append(self, streams: Sequence[Stream], fields: Mapping[str, FieldValue]) -> None:
        """Append one entry to each of ``streams``, in one round trip (never raises).

        While Redis fails, or earlier entries still wait, the entry is queued
        behind them and appended in the background, so watchers see entries in
        the order they were appended.
        """
        if not self._pending and (self._breaker is None or self._breaker.available):
            try:
                await self._append(streams, fields)
                return
            except REDIS_ERRORS as error:
                self._failed("feed", error)
            except Exception:
                log.exception("%s: an entry Redis cannot take was dropped", self.name)
                return
        if len(self._pending) == self._pending.maxlen:
            log.warning("%s: %d entries wait for Redis; dropping the oldest", self.name, len(self._pending))
            self._dropped += 1
        self._pending.append((streams, fields, time.monotonic()))
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.get_running_loop().create_task(self._drain(), name=f"{self.name}-retry")

    async def _append(self, streams: Sequence[Stream], fields: Mapping[str, FieldValue]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xadd(stream.key, dict(fields), maxlen=stream.max_entries, approximate=True)  # type: ignore[arg-type]
                if stream.ttl_seconds is not None:
                    pipe.expire(stream.key, stream.ttl_seconds)
            await pipe.execute()

    async def _drain(self) -> None:
        async def flush(attempt: Attempt) -> None:
            while self._pending:
                streams, fields, _queued_at = self._pending[0]
                try:
                    await self._append(streams, fields)
                except REDIS_ERRORS as error:
                    self._failed("feed-retry", error)
                    raise
                except Exception:  # retrying would block every later entry behind it
                    log.exception("%s: an entry Redis cannot take was dropped", self.name)
                self._pending.popleft()
                attempt.live()

        await reconnecting(flush, name=f"{self.name} appends", backoff=self._backoff)

    def _failed(self, op: str, error: BaseException) -> None:
        if self._breaker is not None:
            self._breaker.failed(op, error)

    async def newest_id(self, stream: str) -> str:
        """The id of the newest entry of ``stream`` ("0-0" when it has none).

        Raises:
            Unavailable: Redis failed.
        """
        try:
            newest: Any = await self._reader.xrevrange(stream, count=1)
        except REDIS_ERRORS as error:
            raise self._unavailable(error) from None
        if not newest:
            return "0-0"
        entry_id = newest[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def watch(
        self, stream: str, *, since: str | None = None, block_ms: int = 5000, count: int = 100
    ) -> AsyncIterator[StreamEntry]:
        """Yield the ``started`` marker, then every entry of ``stream`` after it, for ever.

        The marker comes once the reader is positioned: at ``since``, or
        without one at the stream's newest entry at that moment. Every entry
        appended after the marker is yielded; to resume without a gap, watch
        again with the id of the last entry (or marker) seen.

        Raises:
            InvalidArgument: ``since`` is not a stream id.
            Unavailable: Redis failed; the watcher should come back with ``since``.
        """
        last = check_stream_id(since) if since else await self.newest_id(stream)
        yield StreamEntry(id=last, fields={}, started=True)
        while True:
            try:
                reply: Any = await self._reader.xread({stream: last}, block=block_ms, count=count)
            except REDIS_ERRORS as error:
                raise self._unavailable(error) from None
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    yield StreamEntry(id=last, fields={_text(k): v for k, v in fields.items()})

    def _unavailable(self, error: BaseException) -> Unavailable:
        return Unavailable(f"the {self.name} is unavailable ({type(error).__name__}); retry shortly")

    async def close(self) -> None:
        """Stop the background retry (entries still queued are dropped: Postgres has the truth)."""
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        if self._pending:
            log.warning("%s closed with %d entries never appended", self.name, len(self._pending))


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
