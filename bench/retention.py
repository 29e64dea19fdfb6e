"""A retention sweep of 100,000 old items beside hot reads: does the p99 of the reads rise?

A thread store runs in its own process. One hot thread (50 items) is read through
``ListItems`` in a loop while another process sweeps 100 threads of 1,000 items each
that were last active 400 days ago, as another replica's background sweep would, with
the deployment's settings (``SWITCHBOARD_RETENTION_CHUNK``/``_DUTY_CYCLE``/``_PAUSE_SECONDS``
from the environment, else the defaults); once served from the hot cache and once from
Postgres alone. For scale, the same sweep at full speed (``SWITCHBOARD_RETENTION_DUTY_CYCLE=1``,
never resting) is measured the same way first.

Side by side: the one sweep is held, at its next rest, every other ``WINDOW_SECONDS``, so
windows of reads during the sweep alternate with windows of reads alone all through it.
A machine that gets busier or quieter over the minute a sweep takes moves both sides
alike, which reads alone before and after a sweep cannot promise. The held windows'
time is not the sweep's: it counts only the time it was let run. Goal: the p99 of the
reads during the sweep at most 20% above the p99 of the reads alone. What a sweep leaves
behind for a moment (WAL to write, dirty pages, autovacuum after it) can spill into the
held windows next to its working ones; so the reads of ``BEFORE_SECONDS`` before any
sweep are shown too, with the rise against them (not side by side, so noisier).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
WINDOW_SECONDS = 0.5
BEFORE_SECONDS = 4.0
GOAL = 0.20
# The sweeper: `go` starts the sweep; `hold` holds it at its next rest (it says `held` when it
# is), `run` lets it go on; it prints `done <summary>` at the end. A held sweep counts none of
# the held time as its work (it would otherwise rest 19 times as long after it).
SWEEPER = """
import asyncio, dataclasses, json, os, sys, time
from services.thread_store import retention
from services.thread_store.repository import QUERIES_DIR
from switchboard.sql import Queries, create_pool

may_run = asyncio.Event()
held = 0.0
rest = retention.DutyCycle.rest

async def rest_or_hold(self):
    global held
    await rest(self)
    if not may_run.is_set():
        print("held", flush=True)
        started = time.monotonic()
        await may_run.wait()
        self._since = time.monotonic()
        held += self._since - started

retention.DutyCycle.rest = rest_or_hold

async def main():
    pool = await create_pool(os.environ["DATABASE_URL"], max_size=2)
    config = dataclasses.replace(retention.RetentionConfig.from_env(), thread_days=30, every_seconds=0)
    sweeper = retention.RetentionSweeper(pool, Queries.load(QUERIES_DIR), config)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    assert (await stdin.readline()).strip() == b"go"
    may_run.set()
    sweep = asyncio.create_task(sweeper.sweep())
    while not sweep.done():
        line = asyncio.create_task(stdin.readline())
        await asyncio.wait([sweep, line], return_when=asyncio.FIRST_COMPLETED)
        if not line.done():
            line.cancel()
        elif (word := line.result().strip()) == b"hold":
            may_run.clear()
        else:
            may_run.set()
            if not word:  # the bench is gone: finish
                await sweep
    report = sweep.result()
    print("done", json.dumps(
        {"summary": report.summary(), "seconds": report.seconds, "rested": report.rested_seconds, "held": held}
    ), flush=True)
    await pool.close()

asyncio.run(main())
"""

Reader = Callable[[Callable[[], bool]], Awaitable[list[float]]]


@dataclass(frozen=True)
class Sweep:
    """One sweep beside the reads."""

    before: list[float]
    alone: list[float]
    during: list[float]
    report: dict[str, Any]

    @property
    def rise(self) -> float:
        """How much higher the p99 was during the sweep than alone (0.2: 20% higher)."""
        return pct(self.during, 0.99) / pct(self.alone, 0.99) - 1

    @property
    def rise_over_before(self) -> float:
        """The same against the reads before the sweep."""
        return pct(self.during, 0.99) / pct(self.before, 0.99) - 1


async def main() -> None:
    """Print, per mode, the reads' p50/p99 alone and during each sweep, and the p99's rise against the goal."""
    config = RetentionConfig.from_env()
    print(
        f"the paced sweep: chunk {config.chunk} rows, duty cycle {config.duty_cycle:g}, least rest"
        f" {config.pause_seconds:g} s; beside it, for scale, the same sweep at full speed (duty cycle 1);"
        f" windows of {WINDOW_SECONDS:g} s, alternately sweeping and held"
    )
    paced: dict[str, Sweep] = {}
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
            sweeps = await _measure(f"127.0.0.1:{port}", database_url)
        paced[label] = sweeps["paced"]
        print(f"\n{label}: each sweep {sweeps['paced'].report['summary'].rsplit(' in ', 1)[0]}")
        for name, sweep in sweeps.items():
            r = sweep.report
            ran = r["seconds"] - r["held"]
            print(
                f"{name}: ran {ran:.1f} s (held {r['held']:.1f} s more), resting {r['rested']:.1f} s of it:"
                f" worked {(ran - r['rested']) / ran:.0%} of the time"
            )
        print("| ListItems (50 items) | reads | p50 | p99 | p99 rise against beside (before) |")
        print("| --- | --- | --- | --- | --- |")
        for name, sweep in sweeps.items():
            for side, samples, shown in (
                (f"alone, before the {name} sweep", sweep.before, ""),
                (f"alone, beside the {name} sweep", sweep.alone, ""),
                (f"during the {name} sweep", sweep.during, f"{sweep.rise:+.0%} ({sweep.rise_over_before:+.0%})"),
            ):
                print(f"| {side} | {len(samples)} | {ms(pct(samples, 0.5))} | {ms(pct(samples, 0.99))} | {shown} |")
    print(f"\np99 rise during the paced sweep against alone (goal: at most {GOAL:+.0%}):")
    for label, sweep in paced.items():
        print(
            f"  {label}: {sweep.rise:+.0%} ({'meets' if sweep.rise <= GOAL else 'misses'} the goal);"
            f" against the {BEFORE_SECONDS:g} s before it {sweep.rise_over_before:+.0%}"
        )
    print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


async def _measure(target: str, database_url: str) -> dict[str, Sweep]:
    """One sweep at full speed, then one paced as configured, each of a fresh 100,000 old items."""
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
    sweeps: dict[str, Sweep] = {}
    async with grpc_channel(target) as channel:
        stub = ThreadStoreStub(channel)

        async def read_until(stop: Callable[[], bool]) -> list[float]:
            out: list[float] = []
            while not stop():
                started = time.perf_counter()
                await stub.ListItems(request, metadata=metadata)
                out.append(time.perf_counter() - started)
            return out

        for name, env in (("full-speed", {"SWITCHBOARD_RETENTION_DUTY_CYCLE": "1"}), ("paced", {})):
            pool = await create_pool(database_url, max_size=2)
            try:
                await _insert_old_threads(pool, f"old-{name}-")
            finally:
                await pool.close()
            await read_until(_after(2.0))  # warm-up (and the inserts' after-effects)
            before = await read_until(_after(BEFORE_SECONDS))
            sweeps[name] = await _sweep_beside(read_until, {**os.environ, **env, "DATABASE_URL": database_url}, before)
    return sweeps


def _after(seconds: float) -> Callable[[], bool]:
    deadline = time.perf_counter() + seconds
    return lambda: time.perf_counter() >= deadline


def _either(first: Callable[[], bool], second: Callable[[], bool]) -> Callable[[], bool]:
    return lambda: first() or second()


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
    # Vacuumed now, so autovacuum does not pick the inserts up in the middle of the sweep (the
    # sweep's own deletes it may: that is the sweep's cost); checkpointed, so the inserts' dirty
    # pages are not written out during it either.
    await pool.execute("VACUUM (ANALYZE) threads, thread_items")
    await pool.execute("CHECKPOINT")


async def _sweep_beside(read_until: Reader, env: dict[str, str], before: list[float]) -> Sweep:
    # The sweep runs in a process of its own, as another replica's would (not in this event
    # loop), started and ready before the clock starts (its imports are not the sweep's cost).
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SWEEPER,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout
    assert (await stdout.readline()).strip() == b"ready"
    said: list[str] = []

    async def listen() -> None:
        while line := await stdout.readline():
            said.append(line.decode().strip())

    listening = asyncio.create_task(listen())

    def done() -> bool:
        return any(s.startswith("done") for s in said)

    async def tell(word: str) -> None:
        stdin.write(word.encode() + b"\n")
        await stdin.drain()

    alone: list[float] = []
    during: list[float] = []
    await tell("go")
    while not done():
        during += await read_until(_either(done, _after(WINDOW_SECONDS)))
        if done():
            break
        await tell("hold")
        during += await read_until(_either(done, lambda: "held" in said))  # it works until its next rest
        if done():
            break
        said.remove("held")
        alone += await read_until(_after(WINDOW_SECONDS))
        await tell("run")
    stdin.close()
    await listening
    if await process.wait() != 0:
        raise RuntimeError(f"the sweep failed: {said}")
    report = json.loads(next(s for s in said if s.startswith("done")).removeprefix("done "))
    return Sweep(before, alone, during, report)
