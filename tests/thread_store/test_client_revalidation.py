"""``GrpcThreadStore`` revalidating held pages in the thread store's Redis: never a stale page, on any replica.

A client that holds a page asks Redis for the thread's version instead of
calling the thread store. These tests write through one replica and read at
once through a client of another, and take Redis away from the client, to hold
it to what a read through the thread store itself gives.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from services.thread_store.client import GrpcThreadStore
from switchboard.service_auth import BearerCredentials
from tests.thread_store.conftest import RunningThreadStore, start_thread_store
from tests.thread_store.helpers import Ctx, new_thread, times, user_message

WRITES = 30


@pytest.fixture
async def replica_b(database_url: str, redis_url: str) -> AsyncIterator[RunningThreadStore]:
    """A second thread store on the same Postgres and Redis (the session's is replica A)."""
    running = await start_thread_store(database_url, redis_url)
    yield running
    await running.store.close()
    await running.server.stop(grace=0)


async def test_a_write_through_one_replica_is_read_at_once_through_another(
    thread_store: RunningThreadStore, replica_b: RunningThreadStore, redis_url: str, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    writer = thread_store.store  # replica A
    reader = GrpcThreadStore(replica_b.target, revalidate_in=redis_url)
    try:
        thread = new_thread()
        await writer.save_thread(thread, ctx)
        stamps = iter(times(WRITES + 1))
        expected = [user_message(thread.id, "first", at=next(stamps))]
        await writer.add_thread_item(thread.id, expected[0], ctx)
        for n in range(WRITES):
            assert (await reader.load_thread_items(thread.id, None, 100, "asc", ctx)).data == expected
            assert (await reader.load_thread_items(thread.id, None, 100, "asc", ctx)).data == expected  # held
            if n % 3 == 2:  # an edit in place, same ids and order
                edited = user_message(thread.id, f"edited {n}", at=expected[-1].created_at, item_id=expected[-1].id)
                await writer.save_item(thread.id, edited, ctx)
                expected[-1] = edited
            else:
                item = user_message(thread.id, f"message {n}", at=next(stamps))
                await writer.add_thread_item(thread.id, item, ctx)
                expected.append(item)
            # Acknowledged by replica A: the very next read through B's client has it.
            assert (await reader.load_thread_items(thread.id, None, 100, "asc", ctx)).data == expected
        await writer.delete_thread_item(thread.id, expected[0].id, ctx)
        assert (await reader.load_thread_items(thread.id, None, 100, "asc", ctx)).data == expected[1:]
        await writer.delete_thread(thread.id, ctx)
        assert (await reader.load_thread_items(thread.id, None, 100, "asc", ctx)).data == []
    finally:
        await reader.close()


async def test_a_current_page_costs_no_call_to_the_thread_store(
    database_url: str, redis_url: str, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    running = await start_thread_store(database_url, redis_url)
    reader = GrpcThreadStore(running.target, revalidate_in=redis_url)
    try:
        thread = new_thread()
        await running.store.save_thread(thread, ctx)
        message = user_message(thread.id, "kept", at=times(1)[0])
        await running.store.add_thread_item(thread.id, message, ctx)
        first = await reader.load_thread_items(thread.id, None, 10, "asc", ctx)
        await running.server.stop(grace=0)
        # The thread store is gone; Redis says the held page is current, so it is served.
        again = await reader.load_thread_items(thread.id, None, 10, "asc", ctx)
        assert again == first and again.data == [message]
        assert again.data[0] is not first.data[0], "each read parses its own objects"
    finally:
        await reader.close()
        await running.store.close()
        await running.server.stop(grace=0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_client_that_cannot_reach_redis_asks_the_thread_store(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    reader = GrpcThreadStore(thread_store.target, revalidate_in=f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        thread = new_thread()
        await thread_store.store.save_thread(thread, ctx)
        stamps = times(3)
        items = [user_message(thread.id, "one", at=stamps[0])]
        await thread_store.store.add_thread_item(thread.id, items[0], ctx)
        for n in (1, 2):
            assert (await reader.load_thread_items(thread.id, None, 10, "asc", ctx)).data == items
            items.append(user_message(thread.id, f"more {n}", at=stamps[n]))
            await thread_store.store.add_thread_item(thread.id, items[-1], ctx)
            assert (await reader.load_thread_items(thread.id, None, 10, "asc", ctx)).data == items
    finally:
        await reader.close()


def test_only_a_service_of_the_deployment_revalidates_in_redis_by_default(
    thread_store: RunningThreadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    # This test process holds the internal key (tests/conftest.py): it calls with service tokens.
    assert GrpcThreadStore(thread_store.target).revalidate_in == "redis://cache.internal:6379/0"
    # A user's or operator's token (the console) never reads the store's Redis.
    assert GrpcThreadStore(thread_store.target, credentials=BearerCredentials("t")).revalidate_in is None
    assert GrpcThreadStore(thread_store.target, revalidate_in=None).revalidate_in is None
    monkeypatch.delenv("REDIS_URL")
    assert GrpcThreadStore(thread_store.target).revalidate_in is None


async def test_a_held_page_is_never_served_to_another_user(
    thread_store: RunningThreadStore, redis_url: str, user_id: str
) -> None:
    owner, stranger = Ctx(user_id=user_id), Ctx(user_id=f"other-{user_id}")
    reader = GrpcThreadStore(thread_store.target, revalidate_in=redis_url)
    try:
        thread = new_thread()
        await reader.save_thread(thread, owner)
        message = user_message(thread.id, "private", at=times(1)[0])
        await reader.add_thread_item(thread.id, message, owner)
        for _ in range(2):  # read, then served from the held page
            assert (await reader.load_thread_items(thread.id, None, 10, "asc", owner)).data == [message]
        assert (await reader.load_thread_items(thread.id, None, 10, "asc", stranger)).data == []
        operator = Ctx(user_id=user_id, roles=("operator",))  # the same user id, another principal
        assert (await reader.load_thread_items(thread.id, None, 10, "asc", operator)).data == [message]
    finally:
        await reader.close()
