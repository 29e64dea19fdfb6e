"""Loading a 50-item thread through the thread store's gRPC API, side by side.

- hot: served from Redis;
- cache off, local Postgres;
- cache off, Postgres behind a proxy adding 1 ms each way (a hosted Postgres);
- the floor: an empty gRPC call (health check) plus a raw redis-py GET of the
  same bytes the hot path returns;
- reads per second with 32 concurrent readers, hot and cache-off;
- ``GrpcThreadStore.load_thread_items`` (hot, parsed into ChatKit items) beside a
  ChatKit ``Store`` running in this process on asyncpg that reads the same rows
  with one query and parses them in one pass: what a team writes by hand instead
  of running the thread store. The client runs as a service of the deployment
  does (it holds the thread store's Redis URL): a page it holds is revalidated
  in Redis; the same client revalidating with a ``ListItems`` call is beside it.

Each server is its own process, as in production; this process is the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
from chatkit.types import Page, ThreadItem
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import TypeAdapter

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
    service_metadata,
    switchboard_command,
    throughput,
    wait_healthy,
)
from services.thread_store.client import GrpcThreadStore
from services.thread_store.versions import ThreadVersions
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
from switchboard.principal import Principal
from switchboard.proto_convert import principal_to_proto
from switchboard.redis_client import create_redis
from tests.thread_store.helpers import new_thread, times, user_message

SAMPLES = 400
ITEMS = 50
# The side-by-side figure: many sequential calls, taken in alternating blocks so
# that both stores see the same background load on a shared machine.
SIDE_BY_SIDE_BLOCKS = 20
SIDE_BY_SIDE_BLOCK = 100

_ITEM_LIST: TypeAdapter[list[ThreadItem]] = TypeAdapter(list[ThreadItem])

_PAGE_SQL = {
    order: f"""
SELECT id, data FROM thread_items
WHERE thread_id = $1 AND user_id = $2
  AND ($3::text IS NULL OR (created_at, id COLLATE "C") {op}
       (SELECT created_at, id COLLATE "C" FROM thread_items WHERE thread_id = $1 AND id = $3))
ORDER BY created_at {direction}, id COLLATE "C" {direction}
LIMIT $4
"""
    for order, op, direction in (("asc", ">", "ASC"), ("desc", "<", "DESC"))
}


class InProcessItemStore:
    """The baseline: the read of a ChatKit ``Store`` in the caller's process, on asyncpg, over the same rows.

    ``load_thread_items`` is written as a careful team would: one query (owner
    filter, cursor, one row past the page to learn ``has_more``) and one
    ``TypeAdapter(list[ThreadItem])`` pass over the page's JSON. Only this method of
    ChatKit's ``Store`` is compared, so only it is written.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Principal
    ) -> Page[ThreadItem]:
        rows = await self._pool.fetch(_PAGE_SQL[order], thread_id, context.user_id, after, limit + 1)
        has_more = len(rows) > limit
        rows = rows[:limit]
        items = _ITEM_LIST.validate_json("[" + ",".join(row["data"] for row in rows) + "]")
        return Page(data=items, has_more=has_more, after=rows[-1]["id"] if has_more else None)


async def _parse_async(joined: bytes) -> list[ThreadItem]:
    return _ITEM_LIST.validate_json(joined)


async def sample_alternating(
    calls: dict[str, Callable[[], Awaitable[object]]], *, blocks: int, block: int, warmup: int = 50
) -> dict[str, list[float]]:
    """Seconds per call of each of ``calls``, sequentially, in alternating blocks (the order flips each block)."""
    for call in calls.values():
        for _ in range(warmup):
            await call()
    out: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for b in range(blocks):
        for name in names if b % 2 == 0 else reversed(names):
            call, samples = calls[name], out[name]
            for _ in range(block):
                started = time.perf_counter()
                await call()
                samples.append(time.perf_counter() - started)
    return out


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
        ports = {name: free_port() for name in ("hot", "local", "remote", "unauthenticated")}
        envs: dict[str, dict[str, str | None]] = {
            "hot": {"DATABASE_URL": database_url, "REDIS_URL": redis_url},
            "local": {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SWITCHBOARD_CACHE": "off"},
            "remote": {"DATABASE_URL": proxied_url, "REDIS_URL": redis_url, "SWITCHBOARD_CACHE": "off"},
            # The development flag: the same hot server, trusting the body (the cost of verification).
            "unauthenticated": {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SWITCHBOARD_GRPC_AUTH": "off"},
        }
        for name, port in ports.items():
            stack.enter_context(child_process(switchboard_command("thread-store", "--port", str(port)), envs[name]))
        for port in ports.values():
            await wait_healthy(f"127.0.0.1:{port}")
        await _measure(ports, redis_url, database_url)


async def _measure(ports: dict[str, int], redis_url: str, database_url: str) -> None:
    user = f"bench-{uuid.uuid4().hex[:8]}"
    ctx = Principal(user_id=user)
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
    metadata = service_metadata("thread_store", ctx)
    for name, port in ports.items():
        if name == "unauthenticated":
            continue
        async with grpc_channel(f"127.0.0.1:{port}") as channel:
            stub = ThreadStoreStub(channel)
            reply = await stub.ListItems(request, metadata=metadata)
            assert len(reply.items) == ITEMS, f"{name}: expected {ITEMS} items, got {len(reply.items)}"
            payload = reply.SerializeToString()
            results[name] = await sample_latencies(partial(stub.ListItems, request, metadata=metadata), n=SAMPLES)
            if name in ("hot", "local"):
                rates[name] = await throughput(
                    partial(stub.ListItems, request, metadata=metadata), concurrency=32, seconds=3
                )
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
    await _verification_cost(f"127.0.0.1:{ports['hot']}", f"127.0.0.1:{ports['unauthenticated']}", request, ctx)
    await _side_by_side(f"127.0.0.1:{ports['hot']}", database_url, redis_url, thread.id, ctx)


async def _verification_cost(
    authenticated: str, unauthenticated: str, request: pb.ListItemsRequest, ctx: Principal
) -> None:
    """The hot ``ListItems`` with per-call verification (a service token acting for the user, as the
    edge sends it) beside the same server trusting the body (``SWITCHBOARD_GRPC_AUTH=off``)."""
    metadata = service_metadata("thread_store", ctx)
    async with grpc_channel(authenticated) as on, grpc_channel(unauthenticated) as off:
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "on": partial(ThreadStoreStub(on).ListItems, request, metadata=metadata),
            "off": partial(ThreadStoreStub(off).ListItems, request),
            # Where the difference goes: the same token sent to the server that does not check it.
            "off, token sent": partial(ThreadStoreStub(off).ListItems, request, metadata=metadata),
        }
        samples = await sample_alternating(calls, blocks=SIDE_BY_SIDE_BLOCKS, block=SIDE_BY_SIDE_BLOCK)
    with_auth, without = median(samples["on"]), median(samples["off"])
    n = SIDE_BY_SIDE_BLOCKS * SIDE_BY_SIDE_BLOCK
    print_table(
        f"hot ListItems of a {ITEMS}-item thread, {n} sequential calls each (alternating blocks)",
        [
            ("authenticated (service token for the user)", ms(with_auth), ms(pct(samples["on"], 0.99))),
            ("SWITCHBOARD_GRPC_AUTH=off (trusts the body)", ms(without), ms(pct(samples["off"], 0.99))),
            (
                "  off, the same token sent anyway (its transport)",
                ms(median(samples["off, token sent"])),
                ms(pct(samples["off, token sent"], 0.99)),
            ),
        ],
        ("server", "p50", "p99"),
    )
    verdict = "MET" if with_auth <= 1.10 * without else "MISSED"
    print(f"\n  goal: authenticated / unauthenticated p50 <= 1.10 -> {with_auth / without:4.2f}x  {verdict}")


async def _side_by_side(target: str, database_url: str, redis_url: str, thread_id: str, ctx: Principal) -> None:
    """``GrpcThreadStore`` (hot) beside an in-process asyncpg ``Store`` of the same rows."""
    grpc_store = GrpcThreadStore(target, revalidate_in=redis_url)
    by_call = GrpcThreadStore(target, revalidate_in=None)
    versions = ThreadVersions(redis_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    local_store = InProcessItemStore(pool)
    try:
        over_grpc = await grpc_store.load_thread_items(thread_id, None, ITEMS, "asc", ctx)
        in_process = await local_store.load_thread_items(thread_id, None, ITEMS, "asc", ctx)
        assert len(over_grpc.data) == ITEMS, f"expected {ITEMS} items, got {len(over_grpc.data)}"
        assert over_grpc == in_process, "the two stores disagree about the page"
        assert await grpc_store.load_thread_items(thread_id, None, ITEMS, "asc", ctx) == in_process
        assert await by_call.load_thread_items(thread_id, None, ITEMS, "asc", ctx) == in_process
        raw = await grpc_store.load_thread_items_raw(thread_id, None, ITEMS, "asc", ctx)
        assert raw.version, "a hot page carries its version"
        revalidate = pb.ListItemsRequest(
            principal=principal_to_proto(ctx), thread_id=thread_id, limit=ITEMS, if_none_match=raw.version
        )
        assert (await grpc_store.stub.ListItems(revalidate)).not_modified
        assert await versions.current(user_id=ctx.user_id, thread_id=thread_id) == raw.version
        joined = b"[" + b",".join(i.json for i in raw.items) + b"]"
        health = health_pb2_grpc.HealthStub(grpc_store._channels.channel())  # the same channel
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "grpc": partial(grpc_store.load_thread_items, thread_id, None, ITEMS, "asc", ctx),
            "in-process": partial(local_store.load_thread_items, thread_id, None, ITEMS, "asc", ctx),
            "by call": partial(by_call.load_thread_items, thread_id, None, ITEMS, "asc", ctx),
            # Where the time goes: each store's trip without the parse, and the parse.
            "version": partial(versions.current, user_id=ctx.user_id, thread_id=thread_id),
            "grpc call": partial(grpc_store.load_thread_items_raw, thread_id, None, ITEMS, "asc", ctx),
            "revalidate": partial(grpc_store.stub.ListItems, revalidate),
            "empty": partial(health.Check, health_pb2.HealthCheckRequest(service="")),
            "query": partial(pool.fetch, _PAGE_SQL["asc"], thread_id, ctx.user_id, None, ITEMS + 1),
            "parse": partial(_parse_async, joined),
        }
        samples = await sample_alternating(calls, blocks=SIDE_BY_SIDE_BLOCKS, block=SIDE_BY_SIDE_BLOCK)
    finally:
        await grpc_store.close()
        await by_call.close()
        await versions.close()
        await pool.close()
    over, local = median(samples["grpc"]), median(samples["in-process"])
    labels = {
        "grpc": "GrpcThreadStore (hot; held page revalidated in Redis)",
        "in-process": "in-process asyncpg Store, same rows",
        "by call": "GrpcThreadStore (hot; revalidated by a ListItems call)",
        "version": "  the version check in Redis (what a hot read sends)",
        "grpc call": "  ListItems call, full page, unparsed",
        "revalidate": "  ListItems call, 'not modified'",
        "empty": "  an empty gRPC call (health check)",
        "query": "  asyncpg query, unparsed",
        "parse": "  parsing the page (both stores pay it)",
    }
    n = SIDE_BY_SIDE_BLOCKS * SIDE_BY_SIDE_BLOCK
    print_table(
        f"load_thread_items of a {ITEMS}-message history, {n} sequential calls each (alternating blocks)",
        [(labels[name], ms(median(s)), ms(pct(s, 0.99)), f"{median(s) / local:5.2f}x") for name, s in samples.items()],
        ("store", "p50", "p99", "vs in-process"),
    )
    verdict = "MET" if over <= local else "MISSED"
    print(f"\n  goal: grpc / in-process p50 <= 1.0          -> {over / local:4.2f}x  {verdict}")
    print(f"  without Redis (revalidated by call)         -> {median(samples['by call']) / local:4.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
