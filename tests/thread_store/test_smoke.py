from __future__ import annotations

from tests.thread_store.conftest import RunningThreadStore
from tests.thread_store.helpers import Ctx, new_thread, times, user_message


async def test_a_saved_thread_and_its_items_load_back_equal(thread_store: RunningThreadStore, user_id: str) -> None:
    store, ctx = thread_store.store, Ctx(user_id=user_id)
    thread = new_thread(title="hello")
    await store.save_thread(thread, ctx)
    items = [user_message(thread.id, f"m{i}", at=t) for i, t in enumerate(times(3))]
    for item in items:
        await store.add_thread_item(thread.id, item, ctx)
    assert await store.load_thread(thread.id, ctx) == thread
    page = await store.load_thread_items(thread.id, None, 10, "asc", ctx)
    assert page.data == items
    assert page.has_more is False
