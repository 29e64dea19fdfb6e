"""A retention sweep of 100,000 old items beside hot reads: does the p99 of the reads rise?

A thread store runs in its own process. One hot thread (50 items) is read through
``ListItems`` in a loop, alone and then while this process sweeps 100 threads of
1,000 items each that were last active 400 days ago (as another replica's
background sweep would, with the default pause: ``switchboard retention sweep`` in a
process of its own), once served from the hot cache
and once from Postgres alone. Goal: the p99 of the reads during the sweep at most
20% above the p99 alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from datetime import UTC, datetime

from bench.common import (
    bench_storage,
    child_process,
    free_port,
    grpc_channel,
    ms,
    pct,
    service_metadata,
    switchboard_command,
    wait_healthy,
)
from services.thread_store.client import GrpcThreadStore
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
from switchboard.principal import Principal
from switchboard.sql import create_pool
from tests.thread_store.helpers import new_thread, times, user_message

OLD_THREADS = 100
ITEMS_PER_OLD_THREAD = 1000
HOT_ITEMS = 50
SWEEPER = """
import asyncio, os, sys
from services.thread_store.repository import QUERIES_DIR
from services.thread_store.retention import RetentionConfig, RetentionSweeper
from switchboard.sql import Queries, create_pool

async def main():
    pool = await create_pool(os.environ["DATABASE_URL"], max_size=2)
    sweeper = RetentionSweeper(pool, Queries.load(QUERIES_DIR), RetentionConfig(thread_days=30, every_seconds=0))
    print("ready", flush=True)
    sys.stdin.readline()
    print((await sweeper.sweep()).summary(), flush=True)
    await pool.close()

asyncio.run(main())
"""


async def main() -> None:
    """Print the reads' p50/p99 alone and during the sweep: from the hot cache, and from Postgres."""
    for label, cache in (("hot cache", "on"), ("Postgres only (SWITCHBOARD_CACHE=off)", "off")):
        with bench_storage() as (database_url, redis_url), contextlib.ExitStack() as stack:
            port = free_port()
            env: dict[str, str | None] = {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "SWITCHBOARD_CACHE": cache,
                "SWITCHBOARD_RETENTION_SWEEP_SECONDS": "0",
            }
            stack.enter_context(child_process(switchboard_command("thread-store", "--port", str(port)), env))
            await wait_healthy(f"127.0.0.1:{port}")
            print(f"\n{label}")
            await _measure(f"127.0.0.1:{port}", database_url)


async def _measure(target: str, database_url: str) -> None:
    user = f"bench-{uuid.uuid4().hex[:8]}"
    ctx = Principal(user_id=user)
    store = GrpcThreadStore(target)
    thread = new_thread(title="hot")
    await store.save_thread(thread, ctx)
    for i, at in enumerate(times(HOT_ITEMS)):
        await store.add_thread_item(thread.id, user_message(thread.id, f"message {i} " + "x" * 200, at=at), ctx)
    await store.close()

    pool = await create_pool(database_url, max_size=4)
    await pool.execute(
        """
        INSERT INTO threads (id, user_id, data, created_at, updated_at)
        SELECT 'old-' || n, 'old-user', '{}', now() - interval '400 days', now() - interval '400 days'
        FROM generate_series(1, $1) AS n
        """,
        OLD_THREADS,
    )
    await pool.execute(
        """
        INSERT INTO thread_items (thread_id, id, user_id, author, type, data, created_at)
        SELECT 'old-' || t, 'item-' || i, 'old-user', 'old-user', 'user_message',
               jsonb_build_object('text', repeat('y', 200)), now() - interval '400 days'
        FROM generate_series(1, $1) AS t, generate_series(1, $2) AS i
        """,
        OLD_THREADS,
        ITEMS_PER_OLD_THREAD,
    )
    await pool.execute("ANALYZE threads; ANALYZE thread_items")

    request = pb.ListItemsRequest(principal=common_pb2.Principal(user_id=user), thread_id=thread.id, limit=HOT_ITEMS)
    metadata = service_metadata("thread_store", ctx)
    async with grpc_channel(target) as channel:
        stub = ThreadStoreStub(channel)

        async def read_for(seconds: float) -> list[float]:
            out: list[float] = []
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await stub.ListItems(request, metadata=metadata)
                out.append(time.perf_counter() - started)
            return out

        await read_for(1.0)  # warm-up
        alone = await read_for(5.0)
        # The sweep runs in a process of its own, as another replica's would (not in this event
        # loop), started and ready before the clock starts (its imports are not the sweep's cost).
        env = {**os.environ, "DATABASE_URL": database_url}
        sweep = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SWEEPER,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert sweep.stdin is not None and sweep.stdout is not None
        assert (await sweep.stdout.readline()).strip() == b"ready"
        started = time.perf_counter()
        sweep.stdin.write(b"go\n")
        await sweep.stdin.drain()
        waited = asyncio.create_task(sweep.communicate())
        during: list[float] = []
        while not waited.done():
            during += await read_for(0.25)
        out, _ = await waited
        sweep_seconds = time.perf_counter() - started
    await pool.close()
    if sweep.returncode != 0:
        raise RuntimeError(f"the sweep failed: {out.decode()}")

    rise = pct(during, 0.99) / pct(alone, 0.99) - 1
    print(f"{out.decode().strip()} in {sweep_seconds:.1f} s (a process of its own)")
    print("| ListItems (50 items) | reads | p50 | p99 |")
    print("| --- | --- | --- | --- |")
    print(f"| alone | {len(alone)} | {ms(pct(alone, 0.5))} | {ms(pct(alone, 0.99))} |")
    print(f"| during the sweep | {len(during)} | {ms(pct(during, 0.5))} | {ms(pct(during, 0.99))} |")
    print(f"p99 rise: {rise:+.0%} (goal: at most +20%) at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
