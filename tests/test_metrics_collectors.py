"""The metrics read at scrape time: runs by status, escalations waiting, feed lag, and the collectors'
own health when Postgres fails or is slow (a database of this module's own, so counts are exact)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from services.agent_runner.metrics import QUERIES, RUN_STATUSES, RunCounts, runs_collector
from services.session_api.metrics import session_api_collectors
from switchboard.scrape_metrics import FeedBacklogCollector, Fetch, PostgresCollector
from switchboard.streams import Backoff, Stream, StreamFeed
from tests.conftest import PrivateRedis, free_port, migrated_database


@pytest.fixture(scope="module")
def fresh_database(server_database_url: str) -> Iterator[str]:
    """A migrated database no other test writes to."""
    with migrated_database(server_database_url, "sbmetrics") as url:
        yield url


def _registry(*collectors: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    return registry


def _insert_run(conn: psycopg.Connection, status: str, *, age_seconds: float = 0.0) -> None:
    conn.execute(
        "INSERT INTO runs (id, thread_id, user_id, status, created_at)"
        " VALUES (%s, %s, 'metrics-user', %s, clock_timestamp() - make_interval(secs => %s))",
        (uuid.uuid4().hex, uuid.uuid4().hex, status, age_seconds),
    )


def test_runs_are_counted_by_status_with_every_status_reported(fresh_database: str) -> None:
    collector = runs_collector(fresh_database, finished_every=0)
    registry = _registry(collector)
    try:
        assert registry.get_sample_value("switchboard_runs", {"status": "completed"}) == 0
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            for _ in range(3):
                _insert_run(conn, "completed")
            _insert_run(conn, "failed")
            _insert_run(conn, "queued", age_seconds=30)
            _insert_run(conn, "queued", age_seconds=5)
        values = {s: registry.get_sample_value("switchboard_runs", {"status": s}) for s in RUN_STATUSES}
        assert values == {
            "queued": 2,
            "running": 0,
            "waiting_approval": 0,
            "completed": 3,
            "cancelled": 0,
            "failed": 1,
            "interrupted": 0,
        }
        oldest = registry.get_sample_value("switchboard_runs_oldest_queued_seconds")
        assert oldest is not None and 30 <= oldest < 120
        assert registry.get_sample_value("switchboard_metrics_query_up", {"query": "runs"}) == 1
        assert registry.get_sample_value("switchboard_metrics_query_failures_total", {"query": "runs"}) == 0
    finally:
        collector.close()


def test_finished_runs_are_recounted_once_a_window_and_active_ones_every_scrape(fresh_database: str) -> None:
    now = [0.0]
    collector = PostgresCollector(
        query="runs-window",
        database_url=fresh_database,
        read=RunCounts(finished_every=60, clock=lambda: now[0]),
        describe=lambda: [],
    )
    registry = _registry(collector)
    try:
        completed = registry.get_sample_value("switchboard_runs", {"status": "completed"})
        running = registry.get_sample_value("switchboard_runs", {"status": "running"})
        assert completed is not None and running is not None
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            _insert_run(conn, "completed")
            _insert_run(conn, "running")
        now[0] = 59.0
        assert registry.get_sample_value("switchboard_runs", {"status": "running"}) == running + 1
        assert registry.get_sample_value("switchboard_runs", {"status": "completed"}) == completed  # the last count
        now[0] = 60.0
        assert registry.get_sample_value("switchboard_runs", {"status": "completed"}) == completed + 1
    finally:
        collector.close()


def test_a_finished_count_past_the_timeout_fails_one_scrape_and_the_next_report_active_runs() -> None:
    now = [0.0]
    counts = RunCounts(finished_every=60, clock=lambda: now[0])

    def fetch(sql: str) -> list[tuple[object, ...]]:
        if sql == QUERIES.finished_runs:
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
        return [("running", 2, 5.0)]

    with pytest.raises(psycopg.errors.QueryCanceled):
        counts(fetch)
    now[0] = 30.0
    (runs, _oldest) = counts(fetch)
    reported = {s.labels["status"]: s.value for s in runs.samples}
    assert reported == {"queued": 0, "running": 2, "waiting_approval": 0}  # no made-up finished counts
    now[0] = 60.0
    with pytest.raises(psycopg.errors.QueryCanceled):
        counts(fetch)  # tried again once the window passed


def test_escalations_waiting_and_claimed_are_counted(fresh_database: str) -> None:
    (collector,) = session_api_collectors(fresh_database, feed=None)
    assert isinstance(collector, PostgresCollector)
    registry = _registry(collector)
    try:
        assert registry.get_sample_value("switchboard_escalations_waiting") == 0
        assert registry.get_sample_value("switchboard_escalations_oldest_waiting_seconds") == 0
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            session = uuid.uuid4().hex
            conn.execute("INSERT INTO sessions (id, user_id, channel) VALUES (%s, 'u', 'web')", (session,))
            for thread, status, age in (("t1", "open", 40), ("t2", "open", 1), ("t3", "claimed", 0)):
                conn.execute(
                    "INSERT INTO escalations (id, session_id, thread_id, user_id, reason, opened_by, status,"
                    " claimed_by, opened_at) VALUES (%s, %s, %s, 'u', 'help', 'u', %s, %s,"
                    " clock_timestamp() - make_interval(secs => %s))",
                    (uuid.uuid4().hex, session, thread, status, "op" if status == "claimed" else None, age),
                )
        assert registry.get_sample_value("switchboard_escalations_waiting") == 2
        assert registry.get_sample_value("switchboard_escalations_claimed") == 1
        oldest = registry.get_sample_value("switchboard_escalations_oldest_waiting_seconds")
        assert oldest is not None and 40 <= oldest < 120
        assert registry.get_sample_value("switchboard_metrics_query_up", {"query": "escalations"}) == 1
    finally:
        collector.close()


def test_an_unreachable_postgres_leaves_the_gauges_out_and_says_so() -> None:
    collector = runs_collector(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    registry = _registry(collector)
    started = time.monotonic()
    for _ in range(2):
        assert registry.get_sample_value("switchboard_runs", {"status": "completed"}) is None
    assert time.monotonic() - started < 10
    assert registry.get_sample_value("switchboard_metrics_query_up", {"query": "runs"}) == 0
    # Each read of a value is a scrape: two above, one for up, this one; every one failed.
    assert registry.get_sample_value("switchboard_metrics_query_failures_total", {"query": "runs"}) == 4


def test_a_slow_query_is_cut_at_the_timeout(fresh_database: str) -> None:
    def slow(fetch: Fetch) -> list[Metric]:
        fetch("SELECT pg_sleep(10)")
        return [GaugeMetricFamily("switchboard_never", "never reached", value=1)]

    collector = PostgresCollector(
        query="slow", database_url=fresh_database, read=slow, describe=lambda: [], timeout=0.3
    )
    registry = _registry(collector)
    try:
        started = time.monotonic()
        assert registry.get_sample_value("switchboard_metrics_query_up", {"query": "slow"}) == 0
        assert time.monotonic() - started < 3
        assert registry.get_sample_value("switchboard_never") is None
    finally:
        collector.close()


async def test_feed_lag_grows_while_redis_is_down_and_clears_when_it_is_back(private_redis: PrivateRedis) -> None:
    client = aioredis.Redis.from_url(private_redis.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    feed = StreamFeed(client, client, name="test feed", backoff=Backoff(first=0.05, limit=0.2, floor=0.02))
    registry = _registry(FeedBacklogCollector({"change_feed": feed.backlog}))
    stream = Stream(key=f"metrics-test:{uuid.uuid4().hex}", max_entries=10)
    try:
        await feed.append([stream], {"n": 1})
        assert registry.get_sample_value("switchboard_feed_pending_entries", {"feed": "change_feed"}) == 0
        assert registry.get_sample_value("switchboard_feed_lag_seconds", {"feed": "change_feed"}) == 0

        private_redis.stop()
        await feed.append([stream], {"n": 2})
        await feed.append([stream], {"n": 3})
        await asyncio.sleep(0.5)
        assert registry.get_sample_value("switchboard_feed_pending_entries", {"feed": "change_feed"}) == 2
        lag = registry.get_sample_value("switchboard_feed_lag_seconds", {"feed": "change_feed"})
        assert lag is not None and lag >= 0.5

        private_redis.start()
        for _ in range(300):  # the retry's back-off is at most 0.2 s
            if not feed.pending:
                break
            await asyncio.sleep(0.05)
        assert registry.get_sample_value("switchboard_feed_pending_entries", {"feed": "change_feed"}) == 0
        assert registry.get_sample_value("switchboard_feed_lag_seconds", {"feed": "change_feed"}) == 0
        assert registry.get_sample_value("switchboard_feed_dropped_entries_total", {"feed": "change_feed"}) == 0
        # The restarted server kept nothing (no persistence); both waiting entries reached it, in order.
        entries = await client.xrange(stream.key)
        assert [fields[b"n"] for _id, fields in entries] == [b"2", b"3"]
    finally:
        await feed.close()
        await client.aclose()
