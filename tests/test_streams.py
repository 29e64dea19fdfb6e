"""The shared stream feed and reconnect loop, on real Redis servers (one of them stopped and restarted)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import tenacity
from redis.exceptions import ConnectionError as RedisConnectionError

from switchboard.errors import InvalidArgument, Unavailable
from switchboard.redis_client import create_redis
from switchboard.streams import (
    Attempt,
    Backoff,
    Lost,
    Stream,
    StreamEntry,
    StreamFeed,
    check_stream_id,
    reconnecting,
)
from tests.conftest import PrivateRedis, free_port

FAST = Backoff(first=0.01, limit=0.04, floor=0.002)


class GaveUp(Exception):
    """Raised by a follower to end a test's loop."""


def dead_redis() -> aioredis.Redis:
    """A client of a port nobody listens on: every command fails like a lost Redis."""
    return create_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)


async def next_entry(entries: AsyncIterator[StreamEntry]) -> StreamEntry:
    return await asyncio.wait_for(anext(entries), timeout=5)


async def test_the_back_off_is_jittered_widens_with_failures_and_never_passes_its_limit() -> None:
    dead = dead_redis()
    lost: list[Lost] = []

    async def follow(attempt: Attempt) -> None:
        if attempt.failures == 40:
            return
        await dead.ping()

    await reconnecting(follow, name="dead redis", on_lost=lost.append, backoff=FAST)
    await dead.aclose()

    assert [event.failures for event in lost] == list(range(1, 41))
    assert all(isinstance(event.error, RedisConnectionError) for event in lost)
    for event in lost:
        window = min(FAST.limit, FAST.first * 2 ** (event.failures - 1))
        assert FAST.floor <= event.delay <= window
    capped = [event.delay for event in lost if event.failures >= 4]
    assert len(set(capped)) == len(capped)  # jitter: replicas that failed together do not retry together
    assert max(capped) > FAST.first  # the window widened past the first one
    assert max(event.delay for event in lost) <= FAST.limit


def test_the_default_back_off_draws_each_wait_at_random_within_a_bounded_window() -> None:
    policy, wait = Backoff(), Backoff().wait()
    state = tenacity.RetryCallState(tenacity.AsyncRetrying(), fn=None, args=(), kwargs={})
    for failures in (1, 2, 5, 50):
        state.attempt_number = failures
        waits = [wait(state) for _ in range(200)]
        window = min(policy.limit, policy.first * 2 ** (failures - 1))
        assert all(policy.floor <= w <= window for w in waits)
        assert max(waits) - min(waits) > (window - policy.floor) / 2  # spread over the window, not fixed
    assert policy.limit <= 10  # a reconnect never waits long once the peer is back


async def test_a_follower_that_went_live_starts_again_from_the_first_window() -> None:
    dead = dead_redis()
    lost: list[Lost] = []
    seen: list[int] = []

    async def follow(attempt: Attempt) -> None:
        seen.append(attempt.failures)
        if len(seen) == 4:
            attempt.live()  # connected, then lost again
        if len(seen) == 7:
            return
        await dead.ping()

    await reconnecting(follow, name="flaky redis", on_lost=lost.append, backoff=FAST)
    await dead.aclose()

    assert seen == [0, 1, 2, 3, 1, 2, 3]
    assert [event.failures for event in lost] == [1, 2, 3, 1, 2, 3]


async def test_a_fatal_error_or_an_error_not_worth_retrying_ends_the_loop_at_once() -> None:
    tries = 0

    async def refused(attempt: Attempt) -> None:
        nonlocal tries
        tries += 1
        raise GaveUp("the token was refused")

    with pytest.raises(GaveUp):
        await reconnecting(refused, name="sign-in", retry_on=(Exception,), fatal=(GaveUp,), backoff=FAST)
    with pytest.raises(GaveUp):
        await reconnecting(refused, name="sign-in", retry_on=(RedisConnectionError,), backoff=FAST)
    assert tries == 2


async def test_cancelling_a_reconnecting_loop_stops_it(redis_url: str) -> None:
    client = create_redis(redis_url)
    subscribed = asyncio.Event()

    async def follow(attempt: Attempt) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(f"test:{uuid.uuid4().hex}")
            attempt.live()
            subscribed.set()
            await asyncio.Event().wait()

    loop = asyncio.create_task(reconnecting(follow, name="subscriber", backoff=FAST))
    await asyncio.wait_for(subscribed.wait(), 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    await client.aclose()


def test_since_must_be_a_stream_id_redis_accepts() -> None:
    assert check_stream_id("1700000000000-3") == "1700000000000-3"
    assert check_stream_id("1700000000000") == "1700000000000"
    for bad in ["", "$", "abc", "1-", "-1", "1-2-3", "99999999999999999999-0", "1 -0"]:
        with pytest.raises(InvalidArgument, match="since"):
            check_stream_id(bad)


async def test_a_watch_starts_after_older_entries_and_yields_every_later_one_in_order(redis_url: str) -> None:
    client, reader = create_redis(redis_url), create_redis(redis_url, timeout=10)
    feed = StreamFeed(client, reader, name="test feed")
    stream = Stream(f"test:{{{uuid.uuid4().hex}}}:events", max_entries=100, ttl_seconds=60)
    try:
        await feed.append([stream], {"n": "old"})
        entries = feed.watch(stream.key, block_ms=1000)
        started = await next_entry(entries)
        assert started.started and not started.fields
        # No pause: everything appended once the marker arrived reaches the watcher.
        for n in range(5):
            await feed.append([stream], {"n": str(n)})
        later = [await next_entry(entries) for _ in range(5)]
        assert [entry.fields["n"] for entry in later] == [b"0", b"1", b"2", b"3", b"4"]
        assert all(not entry.started and entry.id > started.id for entry in later)
        assert await client.ttl(stream.key) > 0
        await entries.aclose()  # type: ignore[attr-defined]

        resumed = feed.watch(stream.key, since=later[1].id, block_ms=1000)
        assert (await next_entry(resumed)).id == later[1].id  # the marker is the resume point
        assert [(await next_entry(resumed)).fields["n"] for _ in range(3)] == [b"2", b"3", b"4"]
        await resumed.aclose()  # type: ignore[attr-defined]
    finally:
        await feed.close()
        await client.aclose()
        await reader.aclose()


async def test_a_watch_of_an_empty_stream_starts_at_its_beginning(redis_url: str) -> None:
    client, reader = create_redis(redis_url), create_redis(redis_url, timeout=10)
    feed = StreamFeed(client, reader, name="test feed")
    key = f"test:{{{uuid.uuid4().hex}}}:events"
    try:
        entries = feed.watch(key, block_ms=1000)
        assert (await next_entry(entries)).id == "0-0"
        await feed.append([Stream(key, max_entries=10)], {"n": "first"})
        assert (await next_entry(entries)).fields == {"n": b"first"}
        await entries.aclose()  # type: ignore[attr-defined]
    finally:
        await feed.close()
        await client.aclose()
        await reader.aclose()


async def test_no_entry_is_lost_across_a_redis_outage_and_a_resumed_watch(private_redis: PrivateRedis) -> None:
    client, reader = create_redis(private_redis.url), create_redis(private_redis.url, timeout=10)
    feed = StreamFeed(client, reader, name="test feed", backoff=FAST)
    stream = Stream("test:{outage}:events", max_entries=100)
    try:
        entries = feed.watch(stream.key, block_ms=1000)
        last = (await next_entry(entries)).id
        await feed.append([stream], {"n": "before"})
        seen = await next_entry(entries)
        assert seen.fields["n"] == b"before"
        last = seen.id

        private_redis.stop()
        with pytest.raises(Unavailable, match="test feed is unavailable"):
            await next_entry(entries)
        for n in range(3):  # the writes succeed; their entries wait for Redis, in order
            await feed.append([stream], {"n": f"during-{n}"})
        assert feed.pending == 3
        private_redis.start()

        resumed = feed.watch(stream.key, since=last, block_ms=1000)
        assert (await next_entry(resumed)).started
        after = [await next_entry(resumed) for _ in range(3)]
        assert [entry.fields["n"] for entry in after] == [b"during-0", b"during-1", b"during-2"]
        await feed.append([stream], {"n": "after"})
        assert (await next_entry(resumed)).fields["n"] == b"after"
        await resumed.aclose()  # type: ignore[attr-defined]
    finally:
        await feed.close()
        await client.aclose()
        await reader.aclose()


class Breaker:
    """A breaker like the thread store's: open after a failure."""

    def __init__(self) -> None:
        self.open = False
        self.failures: list[str] = []

    @property
    def available(self) -> bool:
        return not self.open

    def failed(self, op: str, error: BaseException) -> None:
        self.failures.append(op)
        self.open = True


async def test_an_append_that_fails_opens_the_breaker_and_never_fails_the_caller() -> None:
    dead, breaker = dead_redis(), Breaker()
    feed = StreamFeed(dead, dead, name="test feed", breaker=breaker, backoff=Backoff(first=5, limit=5, floor=5))
    try:
        await feed.append([Stream("test:{breaker}:events", max_entries=10)], {"n": "1"})
        await feed.append([Stream("test:{breaker}:events", max_entries=10)], {"n": "2"})  # skips Redis: queued
        assert feed.pending == 2
        assert breaker.failures[0] == "feed"
        with pytest.raises(Unavailable):
            await anext(feed.watch("test:{breaker}:events"))
    finally:
        await feed.close()
        await dead.aclose()
