"""Replicas A and B of every service (``replicas.py``) on a real Redis Cluster of three masters
that the test starts (``tests/redis_cluster.py``): the durable runs' logs and signals, the change
feed, the session feed, the hot cache and the shared rate limiter all work across slots, and no
command is refused with CROSSSLOT. Without ``redis-server`` the suite fails saying what to install."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import bearer, new_user, thread_messages
from tests.e2e.replicas import (
    Pair,
    console_on_b_sees_what_happens_on_a,
    conversation_on_a_is_joined_and_cancelled_on_b,
    limiting_edges,
    new_thread,
    rate_limit_holds_across_edges,
    two_replicas,
    write_on_a_is_read_on_b_without_a_stale_read,
)
from tests.redis_cluster import Cluster, redis_cluster

# What a service logs when a Redis call fails and it falls back: the cache's breaker, the feeds'
# appends, the run signals, the rate limiter; and any cluster refusal wherever it is logged.
FALLBACK_LINES = (
    "; falling back",
    "serving from Postgres",
    "entries wait for Redis",
    "could not signal other replicas",
    "per replica until Redis",
    "CROSSSLOT",
    "RedisClusterException",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three cluster-enabled masters, joined."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, database_url: str, cluster: Cluster) -> Iterator[Pair]:
    """Replicas A and B with ``REDIS_URL=redis+cluster://``; after the suite, neither logged a Redis fallback."""
    with two_replicas(tmp_path_factory.mktemp("replicas"), database_url, cluster.url) as started:
        yield started
    assert len(started.outputs) == 2 and all("Switchboard is up." in output for output in started.outputs)
    for output in started.outputs:
        fallbacks = [line for line in output.splitlines() if any(m in line for m in FALLBACK_LINES)]
        assert not fallbacks, "\n".join(fallbacks)


async def test_a_conversation_started_through_edge_a_is_joined_and_cancelled_through_edge_b(pair: Pair) -> None:
    await conversation_on_a_is_joined_and_cancelled_on_b(pair)


async def test_a_write_through_thread_store_a_is_read_through_b_from_the_cache_with_no_stale_read(pair: Pair) -> None:
    await write_on_a_is_read_on_b_without_a_stale_read(pair)


async def test_the_session_feed_and_change_feed_reach_a_console_on_the_other_replicas(pair: Pair) -> None:
    await console_on_b_sees_what_happens_on_a(pair)


async def test_one_users_rate_limit_holds_across_edges_on_the_cluster(pair: Pair) -> None:
    with limiting_edges(pair) as edges:  # their buckets in the cluster (the stacks' REDIS_URL)
        await rate_limit_holds_across_edges(pair, edges)


async def test_users_keys_spread_over_the_masters_and_nothing_is_refused_crossslot(
    pair: Pair, cluster: Cluster
) -> None:
    # One user whose hash tag lives on each master.
    client = cluster.client()
    try:
        by_port: dict[int, str] = {}
        while len(by_port) < len(cluster.ports):
            user = new_user()
            by_port.setdefault(client.get_node_from_key(f"chat:user:{{{user}}}:x").port, user)
    finally:
        client.close()
    before = {port: cluster.command_counts([port]) for port in cluster.ports}
    async with (
        httpx.AsyncClient(base_url=pair.a.edge, timeout=30) as http_a,
        httpx.AsyncClient(base_url=pair.b.edge, timeout=30) as http_b,
    ):
        for user in by_port.values():
            token = pair.a.stack.token(user)
            thread_id = await new_thread(http_a, token)
            assert (await thread_messages(http_b, token, thread_id))[-1][0] == "assistant_message"
            assert (await http_b.get("/api/conversations", headers=bearer(token))).status_code == 200
    for port in cluster.ports:
        after = cluster.command_counts([port])
        ran = {command: calls - before[port].get(command, 0) for command, calls in after.items()}
        # On every master: scripts (cache, rate limits) and stream appends (change feed, run logs).
        assert ran.get("evalsha", 0) > 0 and ran.get("xadd", 0) > 0, (port, ran)
    assert "CROSSSLOT" not in cluster.error_counts()
