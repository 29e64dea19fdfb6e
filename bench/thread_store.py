"""Loading a 50-item thread through the thread store's gRPC API, side by side.

- hot: served from Redis;
- cache off, local Postgres;
- cache off, Postgres behind a proxy adding 1 ms each way (a hosted Postgres);
- the floor: an empty gRPC call (health check) plus a raw redis-py GET of the
  same bytes the hot path returns;
- reads per second with 32 concurrent readers, hot and cache-off.

Each server is its own process, as in production; this process is the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from functools import partial
from urllib.parse import parse_qs, urlsplit, urlunsplit

from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import (
    bench_storage,
    child_process,
    free_port,
    grpc_channel,
    median,
    ms,
    pct,
    print_table,
    sample_latencies,
    switchboard_command,
    throughput,
    wait_healthy,
)
from services.thread_store.client import GrpcThreadStore
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
from switchboard.redis_client import create_redis
from tests.thread_store.helpers import Ctx, new_thread, times, user_message

SAMPLES = 400
ITEMS = 50


def _postgres_target(database_url: str) -> tuple[str, str]:
    """The proxy target of a Postgres URL, and the URL to reach it through a proxy (host filled in later)."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    port = parts.port or int(query.get("port", ["5432"])[0])
    if "host" in query and query["host"][0].startswith("/"):
        target = f"{query['host'][0]}/.s.PGSQL.{port}"
    else:
        target = f"{parts.hostname or '127.0.0.1'}:{port}"
    user = parts.username or "postgres"
    return target, urlunsplit((parts.scheme, f"{user}@127.0.0.1:{{port}}", parts.path, "", ""))


async def main() -> None:
    """Run the benchmark and print its tables."""
    with bench_storage() as (database_url, redis_url), contextlib.ExitStack() as stack:
        proxy_port = free_port()
        target, proxied_template = _postgres_target(database_url)
        stack.enter_context(
            child_process(
                ["python", "-m", "bench.latency_proxy", "--listen", f"127.0.0.1:{proxy_port}", "--target", target],
                {},
            )
        )
        proxied_url = proxied_template.format(port=proxy_port)
        ports = {name: free_port() for name in ("hot", "local", "remote")}
        envs: dict[str, dict[str, str | None]] = {
            "hot": {"DATABASE_URL": database_url, "REDIS_URL": redis_url},
            "local": {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SWITCHBOARD_CACHE": "off"},
            "remote": {"DATABASE_URL": proxied_url, "REDIS_URL": redis_url, "SWITCHBOARD_CACHE": "off"},
        }
        for name, port in ports.items():
            stack.enter_context(child_process(switchboard_command("thread-store", "--port", str(port)), envs[name]))
        for port in ports.values():
            await wait_healthy(f"127.0.0.1:{port}")
        await _measure(ports, redis_url)


async def _measure(ports: dict[str, int], redis_url: str) -> None:
    user = f"bench-{uuid.uuid4().hex[:8]}"
    ctx = Ctx(user_id=user)
    store = GrpcThreadStore(f"127.0.0.1:{ports['hot']}")
    thread = new_thread(title="bench")
    await store.save_thread(thread, ctx)
    for i, at in enumerate(times(ITEMS)):
        await store.add_thread_item(thread.id, user_message(thread.id, f"message number {i} " + "x" * 200, at=at), ctx)
    await store.close()
    request = pb.ListItemsRequest(principal=common_pb2.Principal(user_id=user), thread_id=thread.id, limit=ITEMS)

    results: dict[str, list[float]] = {}
    rates: dict[str, float] = {}
    payload = b""
    for name, port in ports.items():
        async with grpc_channel(f"127.0.0.1:{port}") as channel:
            stub = ThreadStoreStub(channel)
            reply = await stub.ListItems(request)
            assert len(reply.items) == ITEMS, f"{name}: expected {ITEMS} items, got {len(reply.items)}"
            payload = reply.SerializeToString()
            results[name] = await sample_latencies(partial(stub.ListItems, request), n=SAMPLES)
            if name in ("hot", "local"):
                rates[name] = await throughput(partial(stub.ListItems, request), concurrency=32, seconds=3)
            if name == "hot":
                health = health_pb2_grpc.HealthStub(channel)
                check = health_pb2.HealthCheckRequest(service="")
                results["empty gRPC call"] = await sample_latencies(partial(health.Check, check), n=SAMPLES)

    redis = create_redis(redis_url)
    key = f"bench:{user}:payload"
    await redis.set(key, payload, ex=60)
    results["raw redis GET"] = await sample_latencies(lambda: redis.get(key), n=SAMPLES)
    await redis.delete(key)
    await redis.aclose()

    floor = median(results["empty gRPC call"]) + median(results["raw redis GET"])
    hot = median(results["hot"])
    labels = {
        "hot": "hot (Redis)",
        "local": "cache off, local Postgres",
        "remote": "cache off, Postgres +1 ms each way",
        "empty gRPC call": "floor: empty gRPC call",
        "raw redis GET": f"floor: raw redis GET ({len(payload)} B)",
    }
    rows = [(labels[name], ms(median(s)), ms(pct(s, 0.99)), f"{median(s) / hot:5.2f}x") for name, s in results.items()]
    rows.append(("floor (gRPC call + GET)", ms(floor), "", f"{floor / hot:5.2f}x"))
    print_table(
        f"ListItems of a {ITEMS}-item thread, {SAMPLES} sequential calls each", rows, ("path", "p50", "p99", "vs hot")
    )
    print_table(
        "32 concurrent readers, 3 s each",
        [
            ("hot (Redis)", f"{rates['hot']:8.0f} reads/s"),
            ("cache off, local Postgres", f"{rates['local']:8.0f} reads/s"),
        ],
        ("path", "throughput"),
    )
    remote = median(results["remote"])
    floor_verdict = "MET" if hot <= 1.5 * floor else "MISSED"
    remote_verdict = "MET" if remote >= 3 * hot else "MISSED"
    print(f"\n  goal: hot p50 within 1.5x of the floor      -> {hot / floor:4.2f}x  {floor_verdict}")
    print(f"  goal: hot >= 3x faster than remote-like PG -> {remote / hot:4.2f}x  {remote_verdict}")
    print(f"  hot vs cache-off throughput                -> {rates['hot'] / rates['local']:4.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
