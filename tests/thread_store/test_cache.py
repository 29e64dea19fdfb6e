"""The Redis hot cache: hot reads skip Postgres, writes show at once, Redis trouble changes nothing a client sees."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

from services.thread_store.cache import thread_key
from services.thread_store.client import GrpcThreadStore
from services.thread_store.servicer import ThreadItemWireCodec
from switchboard.redis_client import create_redis
from tests.conftest import PrivateRedis
from tests.thread_store.conftest import RunningThreadStore, start_thread_store
from tests.thread_store.helpers import Ctx, assistant_message, new_thread, times, user_message

# The cache's marker of fully cached items: the item codec's format.
FORMAT = ThreadItemWireCodec.format.encode()


async def _thread(store: GrpcThreadStore, ctx: Ctx, n: int) -> str:
    thread = new_thread()
    await store.save_thread(thread, ctx)
    for i, t in enumerate(times(n)):
        await store.add_thread_item(thread.id, user_message(thread.id, f"m{i}", at=t), ctx)
    return thread.id


async def test_a_hot_read_does_not_touch_postgres(thread_store: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id = await _thread(thread_store.store, ctx, 50)
    await thread_store.store.load_thread_items(thread_id, None, 50, "asc", ctx)  # warm
    counter = thread_store.queries
    before = counter.count
    for _ in range(5):
        page = await thread_store.store.load_thread_items(thread_id, None, 50, "asc", ctx)
        assert len(page.data) == 50
        await thread_store.store.load_thread(thread_id, ctx)
    assert counter.count == before


async def test_a_cold_read_fills_the_cache_under_the_users_hash_tag(
    thread_store: RunningThreadStore, redis_url: str, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id = await _thread(thread_store.store, ctx, 3)
    redis = create_redis(redis_url)
    try:
        await redis.delete(*(thread_key(user_id, thread_id, p) for p in ("state", "items", "order")))
        await thread_store.store.load_thread_items(thread_id, None, 10, "asc", ctx)
        assert thread_key(user_id, thread_id, "state") == f"chat:user:{{{user_id}}}:thread:{thread_id}:state"
        assert await redis.hget(thread_key(user_id, thread_id, "state"), "loaded") == FORMAT
        assert await redis.zcard(thread_key(user_id, thread_id, "order")) == 3
        assert 0 < await redis.pttl(thread_key(user_id, thread_id, "items")) <= 600_000
    finally:
        await redis.aclose()


async def test_an_update_is_visible_immediately_after_a_hot_read(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id = await _thread(thread_store.store, ctx, 2)
    store = thread_store.store
    first = (await store.load_thread_items(thread_id, None, 10, "asc", ctx)).data
    edited = assistant_message(thread_id, "edited", at=first[1].created_at, item_id=first[1].id)
    await store.save_item(thread_id, edited, ctx)
    assert (await store.load_thread_items(thread_id, None, 10, "asc", ctx)).data == [first[0], edited]
    thread = await store.load_thread(thread_id, ctx)
    await store.save_thread(thread.model_copy(update={"title": "renamed"}), ctx)
    assert (await store.load_thread(thread_id, ctx)).title == "renamed"
    await store.delete_thread_item(thread_id, first[0].id, ctx)
    assert (await store.load_thread_items(thread_id, None, 10, "asc", ctx)).data == [edited]


async def test_two_replicas_writing_concurrently_leave_no_stale_cache(
    database_url: str, redis_url: str, user_id: str
) -> None:
    a = await start_thread_store(database_url, redis_url)
    b = await start_thread_store(database_url, redis_url)
    try:
        ctx = Ctx(user_id=user_id)
        thread_id = await _thread(a.store, ctx, 1)
        await a.store.load_thread_items(thread_id, None, 100, "asc", ctx)
        stamps = times(40)

        async def write(store: GrpcThreadStore, i: int) -> None:
            await store.add_thread_item(thread_id, user_message(thread_id, f"w{i}", at=stamps[i]), ctx)
            await store.load_thread_items(thread_id, None, 100, "asc", ctx)

        await asyncio.gather(*(write(a.store if i % 2 else b.store, i) for i in range(40)))
        cached = await a.store.load_thread_items(thread_id, None, 100, "asc", ctx)
        truth = await a.service.repository.list_items(thread_id=thread_id, after=None, limit=100, order="asc")
        assert [i.id for i in cached.data] == [r.id for r in truth.items]
        assert len(cached.data) == 41
    finally:
        for running in (a, b):
            await running.store.close()
            await running.server.stop(grace=0)


async def test_redis_stopping_midway_changes_nothing_a_client_sees(
    database_url: str, private_redis: PrivateRedis, user_id: str
) -> None:
    running = await start_thread_store(database_url, private_redis.url)
    store, ctx = running.store, Ctx(user_id=user_id)
    try:
        thread_id = await _thread(store, ctx, 3)
        assert len((await store.load_thread_items(thread_id, None, 10, "asc", ctx)).data) == 3
        private_redis.stop()
        await store.add_thread_item(thread_id, user_message(thread_id, "while down", at=times(5)[4]), ctx)
        page = await store.load_thread_items(thread_id, None, 10, "asc", ctx)
        assert [i.content[0].text for i in page.data][-1] == "while down"  # type: ignore[union-attr]
        assert (await store.load_thread(thread_id, ctx)).id == thread_id
        private_redis.start()
        await asyncio.sleep(1.2)  # past the breaker's cool-down
        for _ in range(3):
            page = await store.load_thread_items(thread_id, None, 10, "asc", ctx)
            assert len(page.data) == 4
        queries = running.queries.count
        await store.load_thread_items(thread_id, None, 10, "asc", ctx)
        assert running.queries.count == queries, "the cache should be hot again"
    finally:
        await store.close()
        await running.server.stop(grace=0)


async def test_a_redis_that_comes_back_with_old_data_serves_no_stale_read(
    database_url: str, private_redis: PrivateRedis, user_id: str
) -> None:
    running = await start_thread_store(database_url, private_redis.url)
    store, ctx = running.store, Ctx(user_id=user_id)
    assert private_redis.proc is not None
    pid = private_redis.proc.pid
    try:
        thread_id = await _thread(store, ctx, 2)
        await store.load_thread_items(thread_id, None, 10, "asc", ctx)  # cached with 2 items
        os.kill(pid, signal.SIGSTOP)  # Redis hangs but keeps its (soon stale) data
        try:
            # The first write times out (Redis may still run it later); the second
            # is never sent, the breaker being open: only the repair can fix the cache.
            stamps = times(4)
            await store.add_thread_item(thread_id, user_message(thread_id, "written while hung", at=stamps[2]), ctx)
            await store.add_thread_item(thread_id, user_message(thread_id, "and again", at=stamps[3]), ctx)
            assert len((await store.load_thread_items(thread_id, None, 10, "asc", ctx)).data) == 4
        finally:
            os.kill(pid, signal.SIGCONT)
        for _ in range(20):
            page = await store.load_thread_items(thread_id, None, 10, "asc", ctx)
            assert len(page.data) == 4, "a read returned the stale cached page"
            await asyncio.sleep(0.1)
    finally:
        await store.close()
        await running.server.stop(grace=0)


async def test_a_write_that_may_have_committed_unheard_drops_the_cached_thread(
    thread_store: RunningThreadStore, redis_url: str, user_id: str
) -> None:
    """Postgres cut mid-write can commit a write whose caller hears an error: the thread's cached
    state goes, so neither a plain read nor a client revalidating its held page misses the write."""
    ctx = Ctx(user_id=user_id)
    store = thread_store.store
    thread_id = await _thread(store, ctx, 2)
    held = (await store.load_thread_items(thread_id, None, 10, "asc", ctx)).data  # hot, and held by the client
    repository = thread_store.service.repository
    real_save = repository.save_item

    async def committed_then_cut(**kwargs: object) -> object:
        await real_save(**kwargs)  # type: ignore[arg-type]
        raise ConnectionResetError("the connection was cut after COMMIT")

    repository.save_item = committed_then_cut  # type: ignore[method-assign]
    try:
        unheard = assistant_message(thread_id, "committed unheard", at=held[-1].created_at + timedelta(seconds=1))
        try:
            await store.add_thread_item(thread_id, unheard, ctx)
        except Exception as error:  # the caller hears UNAVAILABLE
            assert "unavailable" in str(error).lower(), error
        else:
            raise AssertionError("the cut write was acknowledged")
    finally:
        repository.save_item = real_save  # type: ignore[method-assign]
    redis = create_redis(redis_url)
    try:
        assert not await redis.exists(thread_key(user_id, thread_id, "state"))
    finally:
        await redis.aclose()
    after = (await store.load_thread_items(thread_id, None, 10, "asc", ctx)).data
    assert [i.id for i in after] == [i.id for i in held] + [unheard.id]
