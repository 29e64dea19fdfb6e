"""The edge's per-user token bucket: this replica's own, on a clock the test moves (no dependence on
machine speed), and the one every replica shares through a real Redis, which falls back to the
replica's own when Redis is down (a Redis server of the test's own, stopped and started again)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from services.edge.auth import RateLimited, RateLimiter, SharedRateLimiter, rate_limit_key
from switchboard.redis_client import create_redis
from tests.conftest import PrivateRedis


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_admitted_and_the_next_request_is_limited_with_a_retry_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=2.0, burst=5, clock=clock)
    for _ in range(5):
        limiter.check("alice")
    with pytest.raises(RateLimited) as raised:
        limiter.check("alice")
    assert raised.value.retry_after == pytest.approx(0.5)


def test_tokens_refill_at_the_configured_rate_and_never_past_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("alice")
    clock.now += 0.5  # one token back
    limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")
    clock.now += 3600  # an hour idle refills to the burst, not beyond
    for _ in range(3):
        limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")


def test_one_users_limit_does_not_touch_another_user() -> None:
    limiter = RateLimiter(per_second=1.0, burst=1, clock=FakeClock())
    limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")
    limiter.check("bob")


# -- shared through Redis ------------------------------------------------------------------


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


async def test_two_replicas_share_one_users_bucket_through_redis(redis_client: aioredis.Redis, user_id: str) -> None:
    # One request per 10 s: the verdicts depend on the bucket's arithmetic, not on this machine's speed.
    edge_a = SharedRateLimiter(redis_client, per_second=0.1, burst=4)
    edge_b = SharedRateLimiter(redis_client, per_second=0.1, burst=4)
    for limiter in (edge_a, edge_b, edge_a, edge_b):
        await limiter.check(user_id)
    for limiter in (edge_a, edge_b):
        with pytest.raises(RateLimited) as raised:
            await limiter.check(user_id)
        assert 0 < raised.value.retry_after <= 10.0  # the next token, at 0.1 per second
        assert "too many requests; retry in" in raised.value.message
    assert edge_a.shared and edge_b.shared
    await edge_b.check(f"{user_id}-other")  # another user's bucket is untouched


async def test_the_bucket_refills_at_the_rate_and_its_key_expires_once_full(
    redis_client: aioredis.Redis, user_id: str
) -> None:
    limiter = SharedRateLimiter(redis_client, per_second=1.0, burst=1)
    await limiter.check(user_id)
    with pytest.raises(RateLimited):
        await limiter.check(user_id)
    await asyncio.sleep(1.05)  # one token back
    await limiter.check(user_id)
    key = rate_limit_key(user_id)
    assert key == f"chat:user:{{{user_id}}}:rate"  # the user's hash tag: one slot on a cluster
    ttl_ms = await redis_client.pttl(key)
    assert 0 < ttl_ms <= 2000  # the time to refill (1 s) and a second: idle users cost nothing


async def test_with_redis_down_each_replica_limits_on_its_own_and_says_so_once(
    private_redis: PrivateRedis, user_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = create_redis(private_redis.url)
    edge_a = SharedRateLimiter(client, per_second=0.1, burst=2, cooldown=0.0)
    edge_b = SharedRateLimiter(client, per_second=0.1, burst=2, cooldown=0.0)
    try:
        await edge_a.check(user_id)  # shared: one of the two taken in Redis
        private_redis.stop()
        caplog.set_level(logging.INFO, logger="services.edge.auth")
        # Each replica now has a bucket of its own: a burst each, and refusals with a retry time.
        for limiter in (edge_a, edge_b):
            for _ in range(2):
                await limiter.check(user_id)
            with pytest.raises(RateLimited) as raised:
                await limiter.check(user_id)
            assert 0 < raised.value.retry_after <= 10.0
            assert not limiter.shared
        warnings = [r for r in caplog.records if "per replica until Redis answers again" in r.getMessage()]
        assert len(warnings) == 2  # once per replica, not once per request (six requests failed)

        private_redis.start()
        caplog.clear()
        # Shared again (a new Redis keeps nothing: a fresh bucket of two for both replicas together).
        await edge_b.check(user_id)
        await edge_a.check(user_id)
        with pytest.raises(RateLimited):
            await edge_b.check(user_id)
        assert edge_a.shared and edge_b.shared
        back = [r for r in caplog.records if "shared through Redis again" in r.getMessage()]
        assert len(back) == 2
    finally:
        await client.aclose()


async def test_after_a_failure_redis_is_left_alone_for_the_cooldown(private_redis: PrivateRedis, user_id: str) -> None:
    client = create_redis(private_redis.url)
    limiter = SharedRateLimiter(client, per_second=0.1, burst=50, cooldown=60.0)
    try:
        private_redis.stop()
        started = time.monotonic()
        await limiter.check(user_id)  # one timeout or refused connection, then this replica's bucket
        first = time.monotonic() - started
        private_redis.start()
        started = time.monotonic()
        for _ in range(20):
            await limiter.check(user_id)
        assert not limiter.shared  # still in the cooldown: Redis was not asked again
        assert time.monotonic() - started < max(first, 0.05) * 20
        assert await client.exists(rate_limit_key(user_id)) == 0  # nothing reached the restarted Redis
    finally:
        await client.aclose()


async def test_without_redis_the_limit_is_this_replicas_own(user_id: str) -> None:
    limiter = SharedRateLimiter(None, per_second=0.1, burst=2)
    assert not limiter.shared
    await limiter.check(user_id)
    await limiter.check(user_id)
    with pytest.raises(RateLimited):
        await limiter.check(user_id)


async def test_after_redis_restarts_the_first_checks_are_shared_again_despite_dropped_connections(
    private_redis: PrivateRedis, user_id: str
) -> None:
    # The edge's client: a sized pool whose connections all die with the server.
    client = create_redis(private_redis.url, pool_size=8, resend_on_dropped=True)
    limiter = SharedRateLimiter(client, per_second=0.1, burst=3, cooldown=0.0)
    try:
        await asyncio.gather(*(limiter.check(f"{user_id}-{n}") for n in range(8)))  # eight pooled connections
        private_redis.stop()
        private_redis.start()
        # Each of these gets a connection the restart dropped: each is sent again on a new one.
        await asyncio.gather(*(limiter.check(user_id) for _ in range(3)))
        assert limiter.shared
        assert await client.exists(rate_limit_key(user_id)) == 1  # taken in the restarted Redis
        with pytest.raises(RateLimited):
            await limiter.check(user_id)
    finally:
        await client.aclose()


class ReplyDropper:
    """A TCP proxy in front of Redis that, once armed, closes the connection instead of passing on the
    reply to the next ``EVALSHA``: the script ran in Redis, and the client never heard so."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed = False
        self.dropped = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        script_sent = asyncio.Event()

        async def requests() -> None:
            while data := await client_reader.read(65536):
                if b"EVALSHA" in data.upper():
                    script_sent.set()
                upstream_writer.write(data)
                await upstream_writer.drain()

        async def replies() -> None:
            while data := await upstream_reader.read(65536):
                if self.armed and script_sent.is_set():
                    self.armed = False
                    self.dropped += 1
                    return  # the script's reply is lost with the connection
                client_writer.write(data)
                await client_writer.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(replies())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_writer, upstream_writer):
            writer.close()


async def test_a_take_resent_after_its_reply_was_lost_is_charged_once(
    private_redis: PrivateRedis, user_id: str
) -> None:
    dropper = ReplyDropper(private_redis.port)
    client = create_redis(await dropper.start(), resend_on_dropped=True)  # the edge's client resends
    limiter = SharedRateLimiter(client, per_second=0.001, burst=3, cooldown=60.0)
    try:
        await limiter.check(user_id)  # the script is loaded; one token taken
        dropper.armed = True
        await limiter.check(user_id)  # ran in Redis, reply lost, sent again on a new connection
        assert dropper.dropped == 1 and limiter.shared  # resent, not a Redis failure
        tokens = float(await client.hget(rate_limit_key(user_id), "tokens"))  # type: ignore[misc]
        assert tokens == pytest.approx(1.0, abs=0.01)  # two requests, two tokens: not three
        await limiter.check(user_id)
        with pytest.raises(RateLimited):
            await limiter.check(user_id)
    finally:
        await client.aclose()
        await dropper.close()
