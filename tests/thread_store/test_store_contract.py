"""The ChatKit Store contract, through a real gRPC server on real Postgres and Redis.

Every test runs twice: with the Redis hot cache and with Postgres alone, so
both read paths keep the same semantics. The semantics are those of the SDK's
reference store (the SQLite store of chatkit-python's tests) and its
``tests/test_store.py``; where ``GrpcThreadStore`` deliberately differs, its
docstring says so and a test here pins it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    ClientToolCallItem,
    ClosedStatus,
    CustomTask,
    EndOfTurnItem,
    FileAttachment,
    HiddenContextItem,
    ImageAttachment,
    SDKHiddenContextItem,
    TaskItem,
    ThreadItem,
    WidgetItem,
    Workflow,
    WorkflowItem,
)
from chatkit.widgets import Card, Text

from services.thread_store.client import GrpcThreadStore
from switchboard.errors import InvalidArgument
from tests.thread_store.conftest import RunningThreadStore
from tests.thread_store.helpers import Ctx, assistant_message, new_thread, times, user_message


@pytest.fixture(params=["cached", "postgres-only"])
def running(
    request: pytest.FixtureRequest, thread_store: RunningThreadStore, uncached_thread_store: RunningThreadStore
) -> RunningThreadStore:
    return thread_store if request.param == "cached" else uncached_thread_store


async def _thread_with_items(store: GrpcThreadStore, ctx: Ctx, n: int) -> tuple[str, list[ThreadItem]]:
    thread = new_thread()
    await store.save_thread(thread, ctx)
    items: list[ThreadItem] = [user_message(thread.id, f"message {i}", at=t) for i, t in enumerate(times(n))]
    for item in items:
        await store.add_thread_item(thread.id, item, ctx)
    return thread.id, items


async def test_a_saved_thread_loads_back_equal(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = new_thread(title="Quarterly numbers", stage="draft")
    await running.store.save_thread(thread, ctx)
    assert await running.store.load_thread(thread.id, ctx) == thread


async def test_saving_a_thread_again_updates_it(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = new_thread(title="first")
    await running.store.save_thread(thread, ctx)
    changed = thread.model_copy(update={"title": "second", "status": ClosedStatus(reason="done")})
    await running.store.save_thread(changed, ctx)
    assert await running.store.load_thread(thread.id, ctx) == changed


async def test_an_unknown_thread_is_not_found_in_the_sdks_words(running: RunningThreadStore, user_id: str) -> None:
    with pytest.raises(NotFoundError) as raised:
        await running.store.load_thread("thr_does_not_exist", Ctx(user_id=user_id))
    assert str(raised.value) == "Thread thr_does_not_exist not found"


async def test_a_thread_with_no_title_loads_back_with_none(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = new_thread(test="test")
    await running.store.save_thread(thread, ctx)
    loaded = await running.store.load_thread(thread.id, ctx)
    assert loaded.title is None and loaded.metadata == {"test": "test"}


async def test_an_unknown_item_is_not_found_in_the_sdks_words(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, _items = await _thread_with_items(running.store, ctx, 1)
    with pytest.raises(NotFoundError) as raised:
        await running.store.load_item(thread_id, "msg_does_not_exist", ctx)
    assert str(raised.value) == f"Item msg_does_not_exist not found in thread {thread_id}"


async def test_an_unknown_attachment_is_not_found_in_the_sdks_words(running: RunningThreadStore, user_id: str) -> None:
    with pytest.raises(NotFoundError) as raised:
        await running.store.load_attachment("atc_does_not_exist", Ctx(user_id=user_id))
    assert str(raised.value) == "File atc_does_not_exist not found"


async def test_another_users_items_are_an_empty_page(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _thread_with_items(running.store, ctx, 2)
    other = Ctx(user_id=f"other-{user_id}")
    page = await running.store.load_thread_items(thread_id, None, 10, "asc", other)
    assert page.data == [] and page.has_more is False and page.after is None
    with pytest.raises(NotFoundError):
        await running.store.load_item(thread_id, items[0].id, other)
    assert (await running.store.load_thread_items(thread_id, None, 10, "asc", ctx)).data == items


async def test_an_unknown_threads_items_are_an_empty_page_unless_strict(
    running: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    page = await running.store.load_thread_items("thr_does_not_exist", None, 10, "asc", ctx)
    assert page.data == [] and page.has_more is False
    with pytest.raises(NotFoundError, match=r"^Thread thr_does_not_exist not found$"):
        await running.store.load_thread_items("thr_does_not_exist", None, 10, "asc", ctx, strict=True)


async def test_an_item_naming_another_thread_is_stored_in_the_thread_written_to(
    running: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    home, elsewhere = new_thread(), new_thread()
    await running.store.save_thread(home, ctx)
    await running.store.save_thread(elsewhere, ctx)
    stray = user_message(elsewhere.id, "filed under home", at=times(1)[0])
    await running.store.add_thread_item(home.id, stray, ctx)
    stored = await running.store.load_item(home.id, stray.id, ctx)
    # Decision: the item's thread_id is rewritten to the thread it is stored in.
    assert stored == stray.model_copy(update={"thread_id": home.id})
    assert [i.id for i in (await running.store.load_thread_items(home.id, None, 10, "asc", ctx)).data] == [stray.id]
    assert (await running.store.load_thread_items(elsewhere.id, None, 10, "asc", ctx)).data == []
    rewritten = assistant_message(elsewhere.id, "saved under home", at=times(2)[1], item_id=stray.id)
    await running.store.save_item(home.id, rewritten, ctx)
    assert await running.store.load_item(home.id, stray.id, ctx) == rewritten.model_copy(update={"thread_id": home.id})


async def test_deleting_what_is_not_there_is_no_error(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _thread_with_items(running.store, ctx, 1)
    await running.store.delete_thread_item(thread_id, "msg_never_saved", ctx)
    await running.store.delete_thread_item("thr_never_saved", "msg_never_saved", ctx)
    await running.store.delete_thread("thr_never_saved", ctx)
    await running.store.delete_attachment("atc_never_saved", ctx)
    assert (await running.store.load_thread_items(thread_id, None, 10, "asc", ctx)).data == items


async def test_deleting_another_users_objects_changes_nothing(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    other = Ctx(user_id=f"other-{user_id}")
    thread_id, items = await _thread_with_items(running.store, ctx, 1)
    image = ImageAttachment(
        id=f"atc_{uuid.uuid4().hex[:8]}", name="cat.png", mime_type="image/png", preview_url="https://x.test/cat.png"
    )
    await running.store.save_attachment(image, ctx)
    await running.store.delete_thread_item(thread_id, items[0].id, other)
    await running.store.delete_thread(thread_id, other)
    await running.store.delete_attachment(image.id, other)
    assert (await running.store.load_thread_items(thread_id, None, 10, "asc", ctx)).data == items
    assert await running.store.load_attachment(image.id, ctx) == image


async def test_items_page_forwards_with_after_set_only_when_there_is_more(
    running: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _thread_with_items(running.store, ctx, 5)
    first = await running.store.load_thread_items(thread_id, None, 2, "asc", ctx)
    assert [i.id for i in first.data] == [i.id for i in items[:2]]
    assert first.has_more is True and first.after == items[1].id
    second = await running.store.load_thread_items(thread_id, first.after, 2, "asc", ctx)
    assert [i.id for i in second.data] == [i.id for i in items[2:4]]
    last = await running.store.load_thread_items(thread_id, second.after, 2, "asc", ctx)
    assert [i.id for i in last.data] == [items[4].id]
    assert last.has_more is False and last.after is None


async def test_items_page_backwards_in_descending_order(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _thread_with_items(running.store, ctx, 4)
    page = await running.store.load_thread_items(thread_id, None, 3, "desc", ctx)
    assert [i.id for i in page.data] == [i.id for i in reversed(items)][:3]
    rest = await running.store.load_thread_items(thread_id, page.after, 3, "desc", ctx)
    assert [i.id for i in rest.data] == [items[0].id]
    assert rest.has_more is False


async def test_a_page_ending_exactly_at_the_last_item_has_no_more(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _thread_with_items(running.store, ctx, 4)
    page = await running.store.load_thread_items(thread_id, None, 4, "asc", ctx)
    assert page.data == items
    assert page.has_more is False and page.after is None


async def test_an_empty_thread_has_an_empty_page(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = new_thread()
    await running.store.save_thread(thread, ctx)
    page = await running.store.load_thread_items(thread.id, None, 10, "asc", ctx)
    assert page.data == [] and page.has_more is False and page.after is None


async def test_an_unknown_cursor_is_an_invalid_argument(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, _items = await _thread_with_items(running.store, ctx, 2)
    with pytest.raises(InvalidArgument, match="cursor"):
        await running.store.load_thread_items(thread_id, "msg_unknown", 10, "asc", ctx)


async def test_an_unknown_threads_cursor_is_an_invalid_argument(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    await running.store.save_thread(new_thread(), ctx)
    with pytest.raises(InvalidArgument, match="cursor"):
        await running.store.load_threads(10, "thr_unknown", "desc", ctx)


async def test_items_with_the_same_creation_time_keep_one_stable_order(
    running: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = new_thread()
    await running.store.save_thread(thread, ctx)
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    ids = ["msg_b", "msg_a", "msg_c"]
    for item_id in ids:
        await running.store.add_thread_item(
            thread.id, user_message(thread.id, item_id, at=moment, item_id=item_id), ctx
        )
    asc = await running.store.load_thread_items(thread.id, None, 10, "asc", ctx)
    assert [i.id for i in asc.data] == sorted(ids)
    page = await running.store.load_thread_items(thread.id, "msg_a", 1, "asc", ctx)
    assert [i.id for i in page.data] == ["msg_b"]
    desc = await running.store.load_thread_items(thread.id, None, 10, "desc", ctx)
    assert [i.id for i in desc.data] == sorted(ids, reverse=True)


async def test_save_item_replaces_an_item_by_id(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _thread_with_items(running.store, ctx, 2)
    replaced = assistant_message(thread_id, "rewritten", at=items[1].created_at, item_id=items[1].id)
    await running.store.save_item(thread_id, replaced, ctx)
    assert await running.store.load_item(thread_id, items[1].id, ctx) == replaced
    page = await running.store.load_thread_items(thread_id, None, 10, "asc", ctx)
    assert page.data == [items[0], replaced]


async def test_a_deleted_item_is_gone(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _thread_with_items(running.store, ctx, 3)
    await running.store.delete_thread_item(thread_id, items[1].id, ctx)
    page = await running.store.load_thread_items(thread_id, None, 10, "asc", ctx)
    assert [i.id for i in page.data] == [items[0].id, items[2].id]
    with pytest.raises(NotFoundError):
        await running.store.load_item(thread_id, items[1].id, ctx)


async def test_deleting_a_thread_deletes_its_items(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, _items = await _thread_with_items(running.store, ctx, 3)
    await running.store.load_thread_items(thread_id, None, 10, "asc", ctx)  # warm the cache
    await running.store.delete_thread(thread_id, ctx)
    with pytest.raises(NotFoundError):
        await running.store.load_thread(thread_id, ctx)
    assert (await running.store.load_thread_items(thread_id, None, 10, "asc", ctx)).data == []
    async with running.service.repository._pool.acquire() as conn:
        left = await conn.fetchval("SELECT count(*) FROM thread_items WHERE thread_id = $1", thread_id)
    assert left == 0


async def test_threads_list_newest_first_with_pagination(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    threads = [new_thread(at=t) for t in times(3)]
    for thread in threads:
        await running.store.save_thread(thread, ctx)
    first = await running.store.load_threads(2, None, "desc", ctx)
    assert [t.id for t in first.data] == [threads[2].id, threads[1].id]
    assert first.has_more is True and first.after == threads[1].id
    rest = await running.store.load_threads(2, first.after, "desc", ctx)
    assert [t.id for t in rest.data] == [threads[0].id]
    assert rest.has_more is False and rest.after is None
    oldest_first = await running.store.load_threads(10, None, "asc", ctx)
    assert [t.id for t in oldest_first.data] == [t.id for t in threads]


async def test_threads_list_by_recent_activity_puts_the_last_used_first(
    running: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    threads = [new_thread(at=t) for t in times(3)]
    for thread in threads:
        await running.store.save_thread(thread, ctx)
    await running.store.add_thread_item(threads[0].id, user_message(threads[0].id, "back again", at=times(1)[0]), ctx)
    page = await running.store.load_threads_page(
        limit=10, after=None, order="desc", context=ctx, sort="recent_activity"
    )
    assert [t.id for t in page.data] == [threads[0].id, threads[2].id, threads[1].id]


async def test_threads_list_by_scope_shows_only_that_scope(running: RunningThreadStore, user_id: str) -> None:
    opportunity = f"opp-{uuid.uuid4().hex[:6]}"
    in_scope = new_thread()
    await running.store.save_thread(in_scope, Ctx(user_id=user_id, scope=opportunity))
    from_metadata = new_thread(scope=opportunity)
    await running.store.save_thread(from_metadata, Ctx(user_id=user_id))
    await running.store.save_thread(new_thread(), Ctx(user_id=user_id))
    page = await running.store.load_threads_page(
        limit=10, after=None, order="desc", context=Ctx(user_id=user_id), sort="recent_activity", scope=opportunity
    )
    assert {t.id for t in page.data} == {in_scope.id, from_metadata.id}


def _every_item_type(thread_id: str) -> list[ThreadItem]:
    at = iter(times(12, start=datetime(2026, 2, 1, tzinfo=UTC)))
    attachment = FileAttachment(id="atc_1", name="report.pdf", mime_type="application/pdf", thread_id=thread_id)
    user = user_message(thread_id, "see attached", at=next(at))
    user = user.model_copy(update={"attachments": [attachment], "quoted_text": "earlier words"})
    return [
        user,
        assistant_message(thread_id, "hello", at=next(at)),
        ClientToolCallItem(
            id="ctc_1", thread_id=thread_id, created_at=next(at), call_id="c1", name="pick", arguments={"a": [1, 2]}
        ),
        WidgetItem(
            id="wdg_1", thread_id=thread_id, created_at=next(at), widget=Card(children=[Text(value="Approve?")])
        ),
        TaskItem(id="tsk_1", thread_id=thread_id, created_at=next(at), task=CustomTask(title="Looking up")),
        WorkflowItem(
            id="wf_1",
            thread_id=thread_id,
            created_at=next(at),
            workflow=Workflow(type="custom", tasks=[CustomTask(title="step 1")]),
        ),
        HiddenContextItem(id="hc_1", thread_id=thread_id, created_at=next(at), content={"secret": "plan"}),
        SDKHiddenContextItem(id="shcx_1", thread_id=thread_id, created_at=next(at), content="sdk context"),
        EndOfTurnItem(id="eot_1", thread_id=thread_id, created_at=next(at)),
    ]


async def test_every_chatkit_item_type_round_trips_equal(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = new_thread()
    await running.store.save_thread(thread, ctx)
    items = _every_item_type(thread.id)
    for item in items:
        await running.store.add_thread_item(thread.id, item, ctx)
    page = await running.store.load_thread_items(thread.id, None, 50, "asc", ctx)
    assert page.data == items
    for item in items:
        assert await running.store.load_item(thread.id, item.id, ctx) == item


async def test_attachments_save_load_and_delete(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    image = ImageAttachment(
        id=f"atc_{uuid.uuid4().hex[:8]}", name="cat.png", mime_type="image/png", preview_url="https://x.test/cat.png"
    )
    await running.store.save_attachment(image, ctx)
    assert await running.store.load_attachment(image.id, ctx) == image
    await running.store.save_attachment_content(image, b"\x89PNG bytes", ctx)
    loaded, content = await running.store.load_attachment_content(image.id, ctx)
    assert loaded == image and content == b"\x89PNG bytes"
    await running.store.delete_attachment(image.id, ctx)
    with pytest.raises(NotFoundError):
        await running.store.load_attachment(image.id, ctx)
    with pytest.raises(NotFoundError):
        await running.store.load_attachment(image.id, Ctx(user_id="someone-else"))


async def test_a_store_built_outside_a_loop_works_from_the_loop_that_calls_it(
    running: RunningThreadStore, user_id: str
) -> None:
    store = GrpcThreadStore(running.target)  # built before use, like an import-time global
    thread = new_thread(at=datetime.now(UTC) - timedelta(days=1))
    await store.save_thread(thread, Ctx(user_id=user_id))
    assert (await store.load_thread(thread.id, Ctx(user_id=user_id))).id == thread.id
    await store.close()
