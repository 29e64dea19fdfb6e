"""What sharing users' rate limits through Redis costs the edge, per request.

Side by side, in this process, interleaved in rounds so machine noise hits each alike:

- this replica's own token bucket (``RateLimiter``, what the edge did before, and its
  fallback while Redis is down);
- the shared bucket (``SharedRateLimiter``: one Lua script in Redis per request) on
  ``REDIS_URL`` (or an embedded Redis);
- the shared bucket while Redis is down (an address nothing listens on): the fallback
  after one failure, with Redis left alone for the cooldown.

Each request takes from one of 1,000 users' buckets at a rate that never refuses.
Also: shared checks per second with 64 callers at once (one event loop, as an edge).
"""

from __future__ import annotations

import itertools
import socket
import time

from bench.common import bench_storage, median, pct, print_table, throughput
from services.edge.auth import RateLimiter, SharedRateLimiter
from switchboard.redis_client import create_redis

USERS = 1000
ROUNDS = 20
PER_ROUND = 200


def _dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # closed again: connections are refused


async def main() -> None:
    """Print per-check latency of the three limiters and the shared one's throughput."""
    with bench_storage() as (_database_url, redis_url):
        users = [f"bench-rate-{n}" for n in range(USERS)]
        local = RateLimiter(per_second=1e6, burst=1_000_000)
        shared = SharedRateLimiter(create_redis(redis_url, pool_size=32), per_second=1e6, burst=1_000_000)
        down = SharedRateLimiter(create_redis(_dead_redis_url(), pool_size=32), per_second=1e6, burst=1_000_000)
        cycle = itertools.cycle(users)
        samples: dict[str, list[float]] = {"local": [], "shared": [], "down": []}

        async def check_local() -> None:
            local.check(next(cycle))

        async def check_shared() -> None:
            await shared.check(next(cycle))

        async def check_down() -> None:
            await down.check(next(cycle))

        calls = {"local": check_local, "shared": check_shared, "down": check_down}
        for call in calls.values():  # warm-up: script loaded, connections open, the fallback taken
            for _ in range(50):
                await call()
        for _ in range(ROUNDS):
            for name, call in calls.items():
                for _ in range(PER_ROUND):
                    started = time.perf_counter()
                    await call()
                    samples[name].append(time.perf_counter() - started)
        assert shared.shared and not down.shared
        base = median(samples["local"])
        rows = [
            (
                label,
                f"{median(samples[name]) * 1e6:8.1f} us",
                f"{pct(samples[name], 0.99) * 1e6:8.1f} us",
                f"{median(samples[name]) / base:6.1f}x",
            )
            for name, label in (
                ("local", "this replica's bucket"),
                ("shared", "shared in Redis (1 script)"),
                ("down", "shared, Redis down (fallback)"),
            )
        ]
        print_table(
            f"one rate-limit check, {ROUNDS * PER_ROUND} each, interleaved", rows, ("limiter", "p50", "p99", "vs local")
        )
        per_second = await throughput(check_shared, concurrency=64, seconds=3.0)
        print(f"\n  shared checks per second, 64 callers on one event loop: {per_second:,.0f}")
        await shared.close()
        await down.close()
