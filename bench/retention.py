"""A retention sweep of 100,000 old items beside hot reads: does the p99 of the reads rise?

A thread store runs in its own process. One hot thread (50 items) is read through
``ListItems`` in a loop while another process sweeps 100 threads of 1,000 items each
that were last active 400 days ago (as another replica's background sweep would, with
the deployment's settings: ``SWITCHBOARD_RETENTION_CHUNK``/``_DUTY_CYCLE``/``_PAUSE_SECONDS``
from the environment, else the defaults), once served from the hot cache and once
from Postgres alone. Each of ``ROUNDS`` rounds reads alone for ``ALONE_SECONDS``, during
a sweep, and alone again for ``ALONE_SECONDS``: the reads during the sweep are compared
with the reads alone on either side of it (side by side, so a machine that gets busier
or quieter over the run moves both). Goal: the p99 during a sweep at most 20% above the
p99 alone; the median over the rounds is what counts on a noisy machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

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
from services.thread_store.retention import RetentionConfig
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
from switchboard.principal import Principal
from switchboard.sql import create_pool
from tests.thread_store.helpers import new_thread, times, user_message

OLD_THREADS = 100
ITEMS_PER_OLD_THREAD = 1000
HOT_ITEMS = 50
ROUNDS = 3
ALONE_SECONDS = 4.0
GOAL = 0.20
SWEEPER = """
import asyncio, dataclasses, os, sys
from services.thread_store.repository import QUERIES_DIR
from services.thread_store.retention import RetentionConfig, RetentionSweeper
from switchboard.sql import Queries, create_pool

async def main():
    pool = await create_pool(os.environ["DATABASE_URL"], max_size=2)
    config = dataclasses.replace(RetentionConfig.from_env(), thread_days=30, every_seconds=0)
    sweeper = RetentionSweeper(pool, Queries.load(QUERIES_DIR), config)
    print("ready", flush=True)
    sys.stdin.readline()
    print((await sweeper.sweep()).summary(), flush=True)
    await pool.close()

asyncio.run(main())
"""


@dataclass(frozen=True)
class Round:
    """One sweep beside the reads."""

    alone: list[float]
    during: list[float]
    sweep_seconds: float
    summary: str

    @property
    def rise(self) -> float:
        """How much higher the p99 was during the sweep than alone (0.2: 20% higher)."""
        return pct(self.during, 0.99) / pct(self.alone, 0.99) - 1


async def main() -> None:
    """Print, per mode, each round's p50/p99 alone and during the sweep, and the median p99 rise."""
    config = RetentionConfig.from_env()
    print(
        f"sweep settings: chunk {config.chunk} rows, duty cycle {config.duty_cycle:g},"
        f" least rest {config.pause_seconds:g} s; {ROUNDS} rounds per mode"
    )
    rises: dict[str, list[float]] = {}
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
            rounds = await _measure(f"127.0.0.1:{port}", database_url)
        rises[label] = [r.rise for r in rounds]
        _print_mode(label, rounds)
    print(f"\nmedian p99 rise over {ROUNDS} rounds (goal: at most {GOAL:+.0%}):")
    for label, values in rises.items():
        rise = statistics.median(values)
        verdict = "meets the goal" if rise <= GOAL else "misses the goal"
        print(f"  {label}: {rise:+.0%} ({verdict}; rounds {', '.join(f'{v:+.0%}' for v in values)})")
    print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def _print_mode(label: str, rounds: list[Round]) -> None:
    print(f"\n{label}")
    print(f"{rounds[0].summary}, each round; sweep took {', '.join(f'{r.sweep_seconds:.1f} s' for r in rounds)}")
    print("| ListItems (50 items) | reads | p50 | p99 | p99 rise |")
    print("| --- | --- | --- | --- | --- |")
    for n, r in enumerate(rounds, 1):
        print(
            f"| round {n} alone (before and after) | {len(r.alone)} | {ms(pct(r.alone, 0.5))}"
            f" | {ms(pct(r.alone, 0.99))} | |"
        )
        print(
            f"| round {n} during the sweep | {len(r.during)} | {ms(pct(r.during, 0.5))} | {ms(pct(r.during, 0.99))}"
            f" | {r.rise:+.0%} |"
        )


async def _measure(target: str, database_url: str) -> list[Round]:
    user = f"bench-{uuid.uuid4().hex[:8]}"
    ctx = Principal(user_id=user)
    store = GrpcThreadStore(target)
    thread = new_thread(title="hot")
    await store.save_thread(thread, ctx)
    for i, at in enumerate(times(HOT_ITEMS)):
        await store.add_thread_item(thread.id, user_message(thread.id, f"message {i} " + "x" * 200, at=at), ctx)
    await store.close()

    request = pb.ListItemsRequest(principal=common_pb2.Principal(user_id=user), thread_id=thread.id, limit=HOT_ITEMS)
    metadata = service_metadata("thread_store", ctx)
    pool = await create_pool(database_url, max_size=4)
    rounds: list[Round] = []
    try:
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
            for n in range(ROUNDS):
                await _insert_old_threads(pool, f"old-{n}-")
                rounds.append(await _one_round(read_for, database_url))
    finally:
        await pool.close()
    return rounds


async def _insert_old_threads(pool: asyncpg.Pool, prefix: str) -> None:
    await pool.execute(
        """
        INSERT INTO threads (id, user_id, data, created_at, updated_at)
        SELECT $1 || n, 'old-user', '{}', now() - interval '400 days', now() - interval '400 days'
        FROM generate_series(1, $2) AS n
        """,
        prefix,
        OLD_THREADS,
    )
    await pool.execute(
        """
        INSERT INTO thread_items (thread_id, id, user_id, author, type, data, created_at)
        SELECT $1 || t, 'item-' || i, 'old-user', 'old-user', 'user_message',
               jsonb_build_object('text', repeat('y', 200)), now() - interval '400 days'
        FROM generate_series(1, $2) AS t, generate_series(1, $3) AS i
        """,
        prefix,
        OLD_THREADS,
        ITEMS_PER_OLD_THREAD,
    )
    await pool.execute("ANALYZE threads; ANALYZE thread_items")
    await pool.execute("CHECKPOINT")  # the inserts' dirty pages are not written out during the sweep


async def _one_round(read_for: Callable[[float], Awaitable[list[float]]], database_url: str) -> Round:
    # The sweep runs in a process of its own, as another replica's would (not in this event
    # loop), started and ready before the clock starts (its imports are not the sweep's cost).
    sweep = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SWEEPER,
        env={**os.environ, "DATABASE_URL": database_url},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert sweep.stdin is not None and sweep.stdout is not None
    assert (await sweep.stdout.readline()).strip() == b"ready"
    before = await read_for(ALONE_SECONDS)
    started = time.perf_counter()
    sweep.stdin.write(b"go\n")
    await sweep.stdin.drain()
    waited = asyncio.create_task(sweep.communicate())
    during: list[float] = []
    while not waited.done():
        during += await read_for(0.05)
    out, _ = await waited
    sweep_seconds = time.perf_counter() - started
    if sweep.returncode != 0:
        raise RuntimeError(f"the sweep failed: {out.decode()}")
    after = await read_for(ALONE_SECONDS)
    return Round(before + after, during, sweep_seconds, out.decode().strip())
