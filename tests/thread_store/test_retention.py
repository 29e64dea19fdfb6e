"""Retention sweeps: what is and is not swept, legal holds, a dry run, the cache and feed cleaned,
a thread.deleted webhook per thread, ``switchboard retention``, and the sweep's pace (a big thread in
chunks, never half-deleted to a reader; the duty cycle; its settings). Each test has a database of its own."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from chatkit.store import NotFoundError

from services.thread_store.feed import org_stream
from services.thread_store.repository import QUERIES_DIR
from services.thread_store.retention import DutyCycle, RetentionConfig, RetentionSweeper
from switchboard.errors import InvalidArgument, NotFound
from switchboard.sql import Queries, create_pool
from tests.conftest import copied_database, migrated_database
from tests.thread_store.conftest import RunningThreadStore, start_thread_store
from tests.thread_store.helpers import Ctx, new_thread, user_message

QUERIES = Queries.load(QUERIES_DIR)
NOW = datetime.now(UTC)
POLICY = RetentionConfig(thread_days=30, audit_days=90, every_seconds=0, batch=2, pause_seconds=0)


@pytest.fixture(scope="module")
def retention_template(server_database_url: str) -> Iterator[str]:
    """A migrated database the tests copy."""
    with migrated_database(server_database_url, "sbret") as url:
        yield url


@pytest.fixture
def db_url(server_database_url: str, retention_template: str) -> Iterator[str]:
    """A database of this test alone."""
    with copied_database(server_database_url, retention_template) as url:
        yield url


@pytest.fixture
async def store(db_url: str, redis_url: str) -> AsyncIterator[RunningThreadStore]:
    """A thread store (with cache and feed) on the test's database; it does not sweep by itself."""
    running = await start_thread_store(db_url, redis_url, retention=RetentionConfig(every_seconds=0))
    yield running
    await running.store.close()
    await running.server.stop(grace=0)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, max_size=4)
    yield p
    await p.close()


async def make_thread(
    store: RunningThreadStore, pool: asyncpg.Pool, ctx: Ctx, *, idle_days: float, items: int = 2
) -> str:
    """A thread with items, read once (so it is in the hot cache), last active ``idle_days`` ago."""
    thread = new_thread(title="t")
    await store.store.save_thread(thread, ctx)
    for n in range(items):
        await store.store.add_thread_item(thread.id, user_message(thread.id, f"m{n}", at=NOW), ctx)
    await store.store.load_thread(thread.id, ctx)
    await pool.execute("UPDATE threads SET updated_at = $2 WHERE id = $1", thread.id, NOW - timedelta(days=idle_days))
    return thread.id


async def audit_event(pool: asyncpg.Pool, *, user: str, org: str, days_old: float, thread: str = "") -> str:
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO sessions (id, user_id, org_id, channel, thread_ids) VALUES ($1, $2, $3, 'web', $4)",
        session_id,
        user,
        org,
        [thread] if thread else [],
    )
    await pool.execute(
        "INSERT INTO session_events (session_id, type, actor_user_id, created_at) VALUES ($1, 'button_click', $2, $3)",
        session_id,
        user,
        NOW - timedelta(days=days_old),
    )
    return session_id


async def count(pool: asyncpg.Pool, sql: str, *args: object) -> int:
    value: int = await pool.fetchval(sql, *args)
    return value


async def test_a_sweep_deletes_only_what_is_past_retention_and_not_held(
    store: RunningThreadStore, pool: asyncpg.Pool, redis_url: str
) -> None:
    org, keep_org, short_org = (f"org-{uuid.uuid4().hex[:6]}" for _ in range(3))
    alice, held_user = Ctx(user_id="alice", org_id=org), Ctx(user_id="bob-held", org_id=org)
    # The deployment's endpoint exists, so every event is stored in the outbox.
    await pool.execute(
        "INSERT INTO webhook_endpoints (id, url, secret) VALUES ('deployment', 'https://hooks.example.com/', $1)",
        "whsec_" + "A" * 44,
    )
    sweeper = RetentionSweeper(pool, QUERIES, POLICY, cache=None, feed=None)
    await sweeper.set_policy(org_id=keep_org, thread_days=0, audit_days=None)
    await sweeper.set_policy(org_id=short_org, thread_days=3, audit_days=0)

    old = await make_thread(store, pool, alice, idle_days=40, items=3)
    recent = await make_thread(store, pool, alice, idle_days=5)
    held = await make_thread(store, pool, alice, idle_days=40)
    of_held_user = await make_thread(store, pool, held_user, idle_days=40)
    forever = await make_thread(store, pool, Ctx(user_id="carol", org_id=keep_org), idle_days=400)
    short = await make_thread(store, pool, Ctx(user_id="dave", org_id=short_org), idle_days=5)
    answering = await make_thread(store, pool, alice, idle_days=40)
    await pool.execute(
        "INSERT INTO runs (id, thread_id, user_id, org_id, status) VALUES ('run-1', $1, 'alice', $2, 'running')",
        answering,
        org,
    )
    await pool.execute(
        "INSERT INTO runs (id, thread_id, user_id, org_id, status) VALUES ('run-2', $1, 'alice', $2, 'completed')",
        old,
        org,
    )
    await pool.execute(
        "INSERT INTO attachments (id, user_id, org_id, thread_id, mime_type, data, content)"
        " VALUES ('att-1', 'alice', $2, $1, 'text/plain', '{}', $3)",
        old,
        org,
        b"x" * 1000,
    )
    await sweeper.hold(thread_id=held, user_id=None, reason="litigation", created_by="legal")
    await sweeper.hold(thread_id=None, user_id="bob-held", reason="", created_by="legal")
    old_audit = await audit_event(pool, user="alice", org=org, days_old=100)
    await audit_event(pool, user="alice", org=org, days_old=10)
    await audit_event(pool, user="bob-held", org=org, days_old=100)
    await audit_event(pool, user="erin", org=org, days_old=100, thread=held)
    await audit_event(pool, user="dave", org=short_org, days_old=1000)  # audit_days 0: forever

    dry = await sweeper.sweep(dry_run=True, now=NOW)
    assert sorted(dry.threads) == sorted([old, short]) and dry.audit_events == 1
    assert await count(pool, "SELECT count(*) FROM threads") == 7, "a dry run deletes nothing"
    assert await count(pool, "SELECT count(*) FROM session_events") == 5

    r = aioredis.from_url(redis_url)
    before = await r.xlen(org_stream(org))
    feed_sweeper = RetentionSweeper(pool, QUERIES, POLICY, cache=store.service.cache, feed=store.service.feed)
    report = await feed_sweeper.sweep(now=NOW)
    assert sorted(report.threads) == sorted([old, short])
    assert (report.items, report.attachments, report.attachment_bytes, report.runs) == (5, 1, 1000, 1)
    assert report.audit_events == 1
    remaining = {row["id"] for row in await pool.fetch("SELECT id FROM threads")}
    assert remaining == {recent, held, of_held_user, forever, answering}
    assert await count(pool, "SELECT count(*) FROM thread_items WHERE thread_id = ANY($1)", [old, short]) == 0
    assert await count(pool, "SELECT count(*) FROM attachments") == 0
    assert await count(pool, "SELECT count(*) FROM runs WHERE thread_id = $1", old) == 0
    assert await count(pool, "SELECT count(*) FROM runs WHERE thread_id = $1", answering) == 1
    assert await count(pool, "SELECT count(*) FROM session_events WHERE session_id = $1", old_audit) == 0
    assert await count(pool, "SELECT count(*) FROM session_events") == 4
    # The hot cache does not serve the deleted thread; the feed says it went.
    with pytest.raises(NotFoundError):
        await store.store.load_thread(old, alice)
    assert await r.xlen(org_stream(org)) == before + 1
    latest: Any = await r.xrevrange(org_stream(org), count=1)
    fields = latest[0][1]
    assert fields[b"type"] == b"thread.deleted" and fields[b"thread_id"] == old.encode()
    await r.aclose()
    # One thread.deleted webhook per thread, enqueued with the deletion.
    events = await pool.fetch("SELECT data::text FROM webhook_events WHERE type = 'thread.deleted'")
    assert len(events) == 2 and all('"reason": "retention"' in e["data"] for e in events)
    # The audit trail is still append-only for everyone else.
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM session_events")

    await sweeper.release(thread_id=held, user_id=None)
    assert (await sweeper.sweep(now=NOW)).threads == [held]
    with pytest.raises(NotFound):
        await sweeper.release(thread_id=held, user_id=None)


async def test_a_thread_touched_after_it_was_found_is_kept(store: RunningThreadStore, pool: asyncpg.Pool) -> None:
    ctx = Ctx(user_id="frank", org_id="org-touch")
    thread = await make_thread(store, pool, ctx, idle_days=40)
    found = await pool.fetch(QUERIES.retention_thread_candidates, NOW, 30, 10, 30, datetime(1970, 1, 1, tzinfo=UTC), "")
    await store.store.add_thread_item(thread, user_message(thread, "back again", at=NOW), ctx)
    sweeper = RetentionSweeper(pool, QUERIES, POLICY)
    report = await sweeper.sweep(now=NOW)
    assert [r["id"] for r in found] == [thread]
    assert report.threads == [] and await count(pool, "SELECT count(*) FROM threads WHERE id = $1", thread) == 1


async def test_policies_and_holds_refuse_bad_input(pool: asyncpg.Pool) -> None:
    sweeper = RetentionSweeper(pool, QUERIES, POLICY)
    with pytest.raises(InvalidArgument, match="days"):
        await sweeper.set_policy(org_id="o", thread_days=-1, audit_days=None)
    with pytest.raises(InvalidArgument, match="either"):
        await sweeper.hold(thread_id="t", user_id="u", reason="", created_by="x")
    with pytest.raises(InvalidArgument):
        await sweeper.set_policy(org_id="", thread_days=1, audit_days=None)
    await sweeper.hold(thread_id="t", user_id=None, reason="", created_by="x")
    await sweeper.hold(thread_id="t", user_id=None, reason="again", created_by="x")
    assert [h.thread_id for h in await sweeper.list_holds()] == ["t"]


async def test_the_retention_command_sweeps_dry_and_for_real(
    store: RunningThreadStore, pool: asyncpg.Pool, db_url: str, redis_url: str
) -> None:
    old = await make_thread(store, pool, Ctx(user_id="gina", org_id="org-cli"), idle_days=40)

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from switchboard.cli import main; sys.exit(main(sys.argv[1:]))",
            "retention",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                **os.environ,
                "DATABASE_URL": db_url,
                "REDIS_URL": redis_url,
                "SWITCHBOARD_RETENTION_THREAD_DAYS": "30",
            },
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("sweep", "--dry-run")
    assert code == 0, err
    assert "would delete 1 threads" in out and old in out
    assert await count(pool, "SELECT count(*) FROM threads WHERE id = $1", old) == 1
    code, out, err = await cli("hold", "--user", "gina", "--reason", "audit")
    assert code == 0, err
    code, out, _ = await cli("sweep")
    assert code == 0 and "deleted 0 threads" in out
    code, out, _ = await cli("release", "--user", "gina")
    assert code == 0
    code, out, _ = await cli("sweep")
    assert code == 0 and "deleted 1 threads" in out
    assert await count(pool, "SELECT count(*) FROM threads WHERE id = $1", old) == 0
    code, _, err = await cli("policy", "--org", "org-cli", "--thread-days", "soon")
    assert code == 2 and "number of days" in err


async def big_thread(pool: asyncpg.Pool, *, items: int, runs: int, attachments: int) -> str:
    """A thread of ``items`` items, ``runs`` finished runs and ``attachments`` attachments of 50 bytes,
    last active 400 days ago."""
    thread = f"big-{uuid.uuid4().hex[:8]}"
    old = NOW - timedelta(days=400)
    await pool.execute(
        "INSERT INTO threads (id, user_id, org_id, data, created_at, updated_at)"
        " VALUES ($1, 'ivan', 'org-big', '{}', $2, $2)",
        thread,
        old,
    )
    await pool.execute(
        "INSERT INTO thread_items (thread_id, id, user_id, author, type, data, created_at)"
        " SELECT $1, 'item-' || n, 'ivan', 'ivan', 'user_message', '{}', $2 FROM generate_series(1, $3) AS n",
        thread,
        old,
        items,
    )
    await pool.execute(
        "INSERT INTO runs (id, thread_id, user_id, org_id, status)"
        " SELECT $1 || '-run-' || n, $1, 'ivan', 'org-big', 'completed' FROM generate_series(1, $2) AS n",
        thread,
        runs,
    )
    await pool.execute(
        "INSERT INTO attachments (id, user_id, org_id, thread_id, mime_type, data, content)"
        " SELECT $1 || '-att-' || n, 'ivan', 'org-big', $1, 'text/plain', '{}', decode(repeat('ab', 50), 'hex')"
        " FROM generate_series(1, $2) AS n",
        thread,
        attachments,
    )
    return thread


# One statement, so one snapshot: the thread's rows as a reader sees them, and whether a sweep is resting in the
# middle of a transaction that has already deleted something (it has an xid).
SEEN = """
SELECT (SELECT count(*) FROM threads WHERE id = $1) AS threads,
       (SELECT count(*) FROM thread_items WHERE thread_id = $1) AS items,
       (SELECT count(*) FROM runs WHERE thread_id = $1) AS runs,
       (SELECT count(*) FROM attachments WHERE thread_id = $1) AS attachments,
       (SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'idle in transaction' AND backend_xid IS NOT NULL
        LIMIT 1) AS sweeping_pid
"""


async def test_a_big_thread_goes_in_chunks_and_readers_see_all_of_it_until_the_commit(pool: asyncpg.Pool) -> None:
    thread = await big_thread(pool, items=1000, runs=250, attachments=150)
    config = RetentionConfig(thread_days=30, every_seconds=0, chunk=100, duty_cycle=0.5, pause_seconds=0.02)
    sweep = asyncio.create_task(RetentionSweeper(pool, QUERIES, config).sweep(now=NOW))
    seen: set[tuple[int, int, int, int]] = set()
    seen_mid_thread = 0
    while not sweep.done():
        row = await pool.fetchrow(SEEN, thread)
        seen.add((row["threads"], row["items"], row["runs"], row["attachments"]))
        seen_mid_thread += row["sweeping_pid"] is not None
        await asyncio.sleep(0.005)
    report = sweep.result()

    assert seen <= {(1, 1000, 250, 150), (0, 0, 0, 0)}, "a reader saw a half-deleted thread"
    assert seen_mid_thread > 0, "the sweep never rested inside the thread's transaction"
    assert report.threads == [thread]
    assert (report.items, report.runs, report.attachments, report.attachment_bytes) == (1000, 250, 150, 150 * 50)
    assert tuple((await pool.fetchrow(SEEN, thread))[:4]) == (0, 0, 0, 0)
    # A rest of at least pause_seconds after each full chunk (10 of items, 2 of runs, 1 of attachments) and the thread.
    assert report.rested_seconds >= 14 * 0.02 * 0.99


async def test_a_sweep_that_fails_in_the_middle_of_a_thread_leaves_the_whole_thread(pool: asyncpg.Pool) -> None:
    thread = await big_thread(pool, items=600, runs=0, attachments=0)
    config = RetentionConfig(thread_days=30, every_seconds=0, chunk=100, duty_cycle=0.5, pause_seconds=0.05)
    sweep = asyncio.create_task(RetentionSweeper(pool, QUERIES, config).sweep(now=NOW))
    while (row := await pool.fetchrow(SEEN, thread))["sweeping_pid"] is None:
        assert not sweep.done(), "the sweep ended before it was seen in the middle of the thread"
        await asyncio.sleep(0.005)
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", row["sweeping_pid"])
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
        await sweep
    assert tuple((await pool.fetchrow(SEEN, thread))[:4]) == (1, 600, 0, 0)
    assert (await RetentionSweeper(pool, QUERIES, config).sweep(now=NOW)).items == 600
    assert await count(pool, "SELECT count(*) FROM thread_items WHERE thread_id = $1", thread) == 0


async def test_the_duty_cycle_rests_in_proportion_to_the_work() -> None:
    pace = DutyCycle(0.25)
    await asyncio.sleep(0.04)  # work: all the time since the last rest counts, waiting on Postgres too
    await pace.rest()
    assert pace.rested >= 3 * 0.04 * 0.99
    pace = DutyCycle(1.0, floor=0.03)
    await pace.rest()
    assert 0.03 * 0.99 <= pace.rested < 1.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SWITCHBOARD_RETENTION_DUTY_CYCLE", "0", "above 0 and at most 1"),
        ("SWITCHBOARD_RETENTION_DUTY_CYCLE", "1.5", "above 0 and at most 1"),
        ("SWITCHBOARD_RETENTION_DUTY_CYCLE", "often", "not a number"),
        ("SWITCHBOARD_RETENTION_CHUNK", "0", "at least 1"),
        ("SWITCHBOARD_RETENTION_CHUNK", "100000", "1 to 10000 rows"),
        ("SWITCHBOARD_RETENTION_PAUSE_SECONDS", "-1", "at least 0"),
    ],
)
def test_the_sweeps_pace_settings_are_checked_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidArgument, match=message) as raised:
        RetentionConfig.from_env()
    assert variable in str(raised.value)


def test_the_sweeps_pace_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_RETENTION_DUTY_CYCLE", "0.1")
    monkeypatch.setenv("SWITCHBOARD_RETENTION_CHUNK", "500")
    config = RetentionConfig.from_env()
    assert (config.duty_cycle, config.chunk) == (0.1, 500)
    assert (RetentionConfig().duty_cycle, RetentionConfig().chunk) == (0.05, 250)


async def test_old_audit_events_go_a_chunk_per_transaction_until_none_is_left(pool: asyncpg.Pool) -> None:
    for _ in range(7):
        await audit_event(pool, user="judy", org="org-audit", days_old=100)
    await audit_event(pool, user="judy", org="org-audit", days_old=10)
    config = RetentionConfig(audit_days=90, every_seconds=0, chunk=3, duty_cycle=1.0, pause_seconds=0.01)
    report = await RetentionSweeper(pool, QUERIES, config).sweep(now=NOW)
    assert report.audit_events == 7
    assert await count(pool, "SELECT count(*) FROM session_events") == 1
    assert report.rested_seconds >= 2 * 0.01 * 0.99, "it rested after each full chunk (3 and 3, then 1)"
