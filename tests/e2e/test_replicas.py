"""Two replicas of every service behind the machine's one Postgres and one Redis (``replicas.py``):
a conversation started through edge A is joined and cancelled through edge B, a write through
thread_store A is read through B with no stale read, a console on B's services sees what happens
through A live, and one user's rate limit holds across edges (shared in Redis; per replica while
Redis is down, then shared again)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PrivateRedis, free_port
from tests.e2e.conftest import new_user
from tests.e2e.replicas import (
    LIMIT_BURST,
    LIMIT_RATE_PER_SECOND,
    Pair,
    burst,
    console_on_b_sees_what_happens_on_a,
    conversation_on_a_is_joined_and_cancelled_on_b,
    limiting_edges,
    rate_limit_holds_across_edges,
    rate_limit_shared,
    two_replicas,
    write_on_a_is_read_on_b_without_a_stale_read,
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str) -> Iterator[Pair]:
    """Replicas A and B on the test database and the machine's Redis."""
    with two_replicas(tmp_path_factory.mktemp("replicas"), database_url, redis_url) as started:
        yield started


async def test_a_conversation_started_through_edge_a_is_joined_and_cancelled_through_edge_b(pair: Pair) -> None:
    await conversation_on_a_is_joined_and_cancelled_on_b(pair)


async def test_a_write_through_thread_store_a_is_read_through_b_with_no_stale_read(pair: Pair) -> None:
    await write_on_a_is_read_on_b_without_a_stale_read(pair)


async def test_a_console_on_the_other_replicas_sees_sessions_escalations_and_changes_live(pair: Pair) -> None:
    await console_on_b_sees_what_happens_on_a(pair)


async def test_one_users_rate_limit_holds_across_edges_and_per_replica_while_redis_is_down(
    pair: Pair, tmp_path: Path
) -> None:
    # The limiting edges keep their buckets in a Redis of this test's own, which it stops.
    limiter_redis = PrivateRedis(tmp_path, free_port())
    limiter_redis.start()
    try:
        with limiting_edges(pair, REDIS_URL=limiter_redis.url) as edges:
            await rate_limit_holds_across_edges(pair, edges)

            limiter_redis.stop()
            codes, elapsed = await burst(edges, pair.a.stack.token(new_user()), 2 * LIMIT_BURST)
            refilled = int(elapsed * LIMIT_RATE_PER_SECOND) + 1
            # Each edge its own bucket: a burst each, and still refusals past it.
            assert 2 * LIMIT_BURST <= codes.count(200) <= 2 * (LIMIT_BURST + refilled), (codes, elapsed)
            assert codes.count(429) >= 2 * (2 * LIMIT_BURST - LIMIT_BURST - refilled) > 0
            assert rate_limit_shared(edges[0]) == 0.0 and rate_limit_shared(edges[1]) == 0.0

            limiter_redis.start()
            await asyncio.sleep(1.2)  # past the edges' one-second cooldown: Redis is tried again
            await rate_limit_holds_across_edges(pair, edges)
    finally:
        limiter_redis.stop()
