"""The fast read path returns exactly what the per-item path returned, hot from Redis and from Postgres.

``GrpcThreadStore.load_thread_items`` parses a page in one pass (one JSON array,
one validation) and the server builds a hot page from cached wire bytes. These
tests hold both to the slow, obvious reading: every item parsed on its own, and
the page Postgres gives when there is no cache.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from chatkit.types import (
    ClientToolCallItem,
    CustomTask,
    EndOfTurnItem,
    FileAttachment,
    HiddenContextItem,
    ImageAttachment,
    Page,
    SDKHiddenContextItem,
    TaskItem,
    ThreadItem,
    UserMessageItem,
    WidgetItem,
    Workflow,
    WorkflowItem,
)
from chatkit.widgets import Card, Text
from pydantic import AnyUrl, ValidationError

from services.thread_store.client import GrpcThreadStore, item_from_json, item_json, items_from_json
from services.thread_store.domain import EncodedItems, ItemRecord, StoredItems
from services.thread_store.servicer import ThreadItemWireCodec, item_to_proto, list_items_wire
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.errors import InvalidArgument
from switchboard.proto_convert import principal_to_proto
from tests.thread_store.conftest import RunningThreadStore
from tests.thread_store.helpers import Ctx, assistant_message, new_thread, times, user_message

LIMITS = (1, 7, 50)
ORDERS = ("asc", "desc")
MAX_PAGES = 100  # more than any walk here needs: a cursor that never ends fails instead of hanging


def _varied_items(thread_id: str) -> list[ThreadItem]:
    """Every kind of item, hidden ones and attachments included, and creation-time ties broken by id bytes."""
    at = iter(times(40, start=datetime(2026, 3, 1, tzinfo=UTC)))
    suffix = uuid.uuid4().hex[:6]
    file = FileAttachment(id=f"atc_f_{suffix}", name="report.pdf", mime_type="application/pdf", thread_id=thread_id)
    image = ImageAttachment(
        id=f"atc_i_{suffix}", name="cat.png", mime_type="image/png", preview_url=AnyUrl("https://x.test/cat.png")
    )
    with_files = user_message(thread_id, "see both attached", at=next(at)).model_copy(
        update={"attachments": [file, image], "quoted_text": "earlier words"}
    )
    items: list[ThreadItem] = [
        with_files,
        assistant_message(thread_id, "hello", at=next(at)),
        ClientToolCallItem(
            id=f"ctc_{suffix}",
            thread_id=thread_id,
            created_at=next(at),
            call_id="c1",
            name="pick",
            arguments={"a": [1]},
        ),
        WidgetItem(
            id=f"wdg_{suffix}", thread_id=thread_id, created_at=next(at), widget=Card(children=[Text(value="Ok?")])
        ),
        TaskItem(id=f"tsk_{suffix}", thread_id=thread_id, created_at=next(at), task=CustomTask(title="Looking up")),
        WorkflowItem(
            id=f"wf_{suffix}",
            thread_id=thread_id,
            created_at=next(at),
            workflow=Workflow(type="custom", tasks=[CustomTask(title="step 1")]),
        ),
        HiddenContextItem(id=f"hc_{suffix}", thread_id=thread_id, created_at=next(at), content={"secret": "plan"}),
        SDKHiddenContextItem(id=f"shc_{suffix}", thread_id=thread_id, created_at=next(at), content="sdk context"),
        EndOfTurnItem(id=f"eot_{suffix}", thread_id=thread_id, created_at=next(at)),
    ]
    tie = next(at)  # one creation time, ids in an order where byte order and case-folded order differ
    items += [
        user_message(thread_id, f"tie {c}", at=tie, item_id=f"msg_{c}_{suffix}") for c in ("a", "B", "_", "0", "Z")
    ]
    items += [assistant_message(thread_id, f"reply {i} " + "é" * i, at=next(at)) for i in range(20)]
    return items


def _listing_order(items: list[ThreadItem], order: str) -> list[ThreadItem]:
    ordered = sorted(items, key=lambda i: (i.created_at, i.id.encode()))
    return ordered if order == "asc" else ordered[::-1]


async def _old_page(
    store: GrpcThreadStore, thread_id: str, after: str | None, limit: int, order: str, ctx: Ctx
) -> Page[ThreadItem]:
    """What ``load_thread_items`` returned before: one ``validate_json`` per item."""
    reply = await store.load_thread_items_raw(thread_id, after, limit, order, ctx)
    return Page(data=[item_from_json(i.json) for i in reply.items], has_more=reply.has_more, after=reply.after)


async def _walk(store: GrpcThreadStore, thread_id: str, *, limit: int, order: str, ctx: Ctx) -> list[Page[ThreadItem]]:
    """Every page of a thread, following ``after``."""
    pages: list[Page[ThreadItem]] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        page = await store.load_thread_items(thread_id, after, limit, order, ctx)
        assert page == await _old_page(store, thread_id, after, limit, order, ctx)
        pages.append(page)
        if not page.has_more:
            return pages
        after = page.after
    raise AssertionError(f"no last page after {MAX_PAGES} pages")


async def _walk_raw(store: GrpcThreadStore, thread_id: str, *, limit: int, order: str, ctx: Ctx) -> list[StoredItems]:
    replies: list[StoredItems] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        reply = await store.load_thread_items_raw(thread_id, after, limit, order, ctx)
        # Only hot pages carry a version (for conditional reads); the rest must be equal.
        replies.append(dataclasses.replace(reply, version=""))
        if not reply.has_more:
            return replies
        after = reply.after
    raise AssertionError(f"no last page after {MAX_PAGES} pages")


async def _varied_thread(store: GrpcThreadStore, ctx: Ctx) -> tuple[str, list[ThreadItem]]:
    thread = new_thread()
    await store.save_thread(thread, ctx)
    items = _varied_items(thread.id)
    for item in items:
        await store.add_thread_item(thread.id, item, ctx)
    return thread.id, items


@pytest.fixture(params=["hot", "postgres-only"])
def running(
    request: pytest.FixtureRequest, thread_store: RunningThreadStore, uncached_thread_store: RunningThreadStore
) -> RunningThreadStore:
    """The store with the Redis hot cache, then the store without Redis."""
    return thread_store if request.param == "hot" else uncached_thread_store


async def test_every_page_is_what_one_parse_per_item_gave(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _varied_thread(running.store, ctx)
    await running.store.load_thread_items(thread_id, None, 1, "asc", ctx)  # fills the cache, if there is one
    before = running.queries.count
    for order in ORDERS:
        for limit in LIMITS:
            pages = await _walk(running.store, thread_id, limit=limit, order=order, ctx=ctx)
            assert [i for p in pages for i in p.data] == _listing_order(items, order)
            assert [len(p.data) for p in pages[:-1]] == [limit] * (len(pages) - 1)
            assert all(p.has_more and p.after == p.data[-1].id for p in pages[:-1])
            assert not pages[-1].has_more and pages[-1].after is None
    if running.service.cache is not None:
        assert running.queries.count == before, "the hot pages must come from Redis alone"


async def test_hidden_items_and_attachments_come_back_whole(running: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _varied_thread(running.store, ctx)
    page = await running.store.load_thread_items(thread_id, None, 50, "asc", ctx)
    by_id = {i.id: i for i in page.data}
    for item in items:
        assert by_id[item.id] == item
        assert type(by_id[item.id]) is type(item)
    with_files = by_id[items[0].id]
    assert isinstance(with_files, UserMessageItem)
    assert [type(a) for a in with_files.attachments] == [FileAttachment, ImageAttachment]
    hidden = [i for i in page.data if isinstance(i, HiddenContextItem | SDKHiddenContextItem)]
    assert [h.content for h in hidden] == [{"secret": "plan"}, "sdk context"]


async def test_a_hot_page_is_the_message_postgres_gives(
    thread_store: RunningThreadStore, uncached_thread_store: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    hot, cold = thread_store.store, uncached_thread_store.store
    thread_id, items = await _varied_thread(hot, ctx)

    async def same_pages() -> None:
        await hot.load_thread_items(thread_id, None, 1, "asc", ctx)  # fills the cache after a drop
        before = thread_store.queries.count
        for order in ORDERS:
            for limit in LIMITS:
                from_redis = await _walk_raw(hot, thread_id, limit=limit, order=order, ctx=ctx)
                assert thread_store.queries.count == before
                assert from_redis == await _walk_raw(cold, thread_id, limit=limit, order=order, ctx=ctx)

    await same_pages()
    # Each kind of write patches the cached thread; the pages stay Postgres's.
    edited = assistant_message(thread_id, "edited", at=items[1].created_at, item_id=items[1].id)
    await hot.save_item(thread_id, edited, ctx)
    await hot.delete_thread_item(thread_id, _listing_order(items, "asc")[-1].id, ctx)
    late = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=1)
    await hot.add_thread_item(thread_id, user_message(thread_id, "a late one", at=late), ctx)
    await same_pages()


async def test_a_cursor_past_the_end_and_an_unknown_cursor_read_as_before(
    running: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread_id, items = await _varied_thread(running.store, ctx)
    last = _listing_order(items, "asc")[-1].id
    page = await running.store.load_thread_items(thread_id, last, 10, "asc", ctx)
    assert page == Page(data=[], has_more=False, after=None)
    assert page == await _old_page(running.store, thread_id, last, 10, "asc", ctx)
    with pytest.raises(InvalidArgument):
        await running.store.load_thread_items(thread_id, "msg_not_here", 10, "asc", ctx)


def test_one_pass_parsing_equals_parsing_each_item() -> None:
    items = _varied_items("thr_parse")
    raws = [item_json(i) for i in items]
    assert items_from_json(raws) == [item_from_json(r) for r in raws] == items
    assert items_from_json([]) == []
    for bad in (b'{"id": "x", "type": "no_such_type"}', b"[1, 2]", b"{not json"):
        with pytest.raises(ValidationError):
            item_from_json(bad)
        with pytest.raises(ValidationError):
            items_from_json([raws[0], bad])


def _record_encoding_to(size: int) -> ItemRecord:
    """An item whose wire form is exactly ``size`` bytes."""
    codec = ThreadItemWireCodec()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for pad in range(4):  # a longer id shifts the size by one where the JSON's own length prefix jumps
        for n in range(max(0, size - 64), size):
            record = ItemRecord(
                id="msg_" + "p" * pad,
                thread_id="thr_wire",
                type="user_message",
                json=b"x" * n,
                created_at=at,
                author="u",
            )
            if len(codec.encode(record)) == size:
                return record
    raise AssertionError(f"no item encodes to {size} bytes")


def test_the_hot_wire_form_is_the_serialized_response_at_every_length() -> None:
    codec = ThreadItemWireCodec()
    # Items on each side of the one-, two- and three-byte length boundaries, and between them.
    sizes = [48, 127, 128, 129, 480, 16383, 16384, 16385, 70_000, 2**21 - 1, 2**21]
    records = [_record_encoding_to(size) for size in sizes]
    assert [len(codec.encode(r)) for r in records] == sizes
    for cut in (0, 1, 2, 6, len(records)):
        for has_more, after in ((False, None), (True, "msg_" + "y" * 200)):
            page = EncodedItems(blobs=[codec.encode(r) for r in records[:cut]], has_more=has_more, after=after)
            expected = pb.ListItemsResponse(
                items=[item_to_proto(r) for r in records[:cut]], has_more=has_more, after=after or ""
            )
            assert list_items_wire(page) == expected.SerializeToString()


# -- conditional reads (ListItems.if_none_match) -------------------------------


async def _list(store: GrpcThreadStore, ctx: Ctx, thread_id: str, version: str = "") -> pb.ListItemsResponse:
    request = pb.ListItemsRequest(
        principal=principal_to_proto(ctx), thread_id=thread_id, limit=50, if_none_match=version
    )
    reply: pb.ListItemsResponse = await store.stub.ListItems(request)
    return reply


async def test_a_hot_page_is_not_modified_until_the_thread_changes(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    store = thread_store.store
    thread = new_thread()
    await store.save_thread(thread, ctx)
    await store.add_thread_item(thread.id, user_message(thread.id, "one", at=times(1)[0]), ctx)
    first = await _list(store, ctx, thread.id)
    assert first.version and len(first.items) == 1
    again = await _list(store, ctx, thread.id, first.version)
    assert again.not_modified and not again.items and not again.version
    await store.add_thread_item(thread.id, user_message(thread.id, "two", at=times(2)[1]), ctx)
    changed = await _list(store, ctx, thread.id, first.version)  # the write was acknowledged: never "not modified"
    assert not changed.not_modified and len(changed.items) == 2 and changed.version != first.version
    renamed = thread.model_copy(update={"title": "renamed"})
    await store.save_thread(renamed, ctx)
    assert not (await _list(store, ctx, thread.id, changed.version)).not_modified


async def test_a_thread_deleted_and_created_again_never_repeats_a_version(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    store = thread_store.store
    thread = new_thread()
    await store.save_thread(thread, ctx)
    await store.add_thread_item(thread.id, user_message(thread.id, "before", at=times(1)[0]), ctx)
    before = await _list(store, ctx, thread.id)
    await store.delete_thread(thread.id, ctx)
    await store.save_thread(thread, ctx)  # the same id, its revisions start over
    await store.add_thread_item(thread.id, user_message(thread.id, "after", at=times(1)[0]), ctx)
    reply = await _list(store, ctx, thread.id, before.version)
    assert not reply.not_modified and [item_from_json(i.json).content[0].text for i in reply.items] == ["after"]  # type: ignore[union-attr]


async def test_a_version_vouches_only_for_the_callers_own_cache(thread_store: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    store = thread_store.store
    thread = new_thread()
    await store.save_thread(thread, ctx)
    owner = await _list(store, ctx, thread.id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _list(store, Ctx(user_id=f"other-{user_id}"), thread.id, owner.version)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as long_version:
        await _list(store, ctx, thread.id, "x" * 81)
    assert long_version.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_page_from_postgres_has_no_version(uncached_thread_store: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = new_thread()
    await uncached_thread_store.store.save_thread(thread, ctx)
    await uncached_thread_store.store.add_thread_item(thread.id, user_message(thread.id, "x", at=times(1)[0]), ctx)
    reply = await _list(uncached_thread_store.store, ctx, thread.id, "1:" + "0" * 40)
    assert not reply.not_modified and reply.version == "" and len(reply.items) == 1


async def test_revalidated_pages_are_fresh_objects_and_follow_every_write(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    store = GrpcThreadStore(thread_store.target)
    try:
        thread = new_thread()
        await store.save_thread(thread, ctx)
        message = user_message(thread.id, "original", at=times(1)[0])
        await store.add_thread_item(thread.id, message, ctx)
        pages = [await store.load_thread_items(thread.id, None, 10, "asc", ctx) for _ in range(4)]
        assert all(page.data == [message] for page in pages)
        assert len({id(page.data[0]) for page in pages}) == 4  # never one object handed to two callers
        pages[-1].data[0].content[0].text = "mutated by a caller"  # type: ignore[union-attr]
        assert (await store.load_thread_items(thread.id, None, 10, "asc", ctx)).data == [message]
        # A write through another client: the next read of this one sees it at once.
        edited = message.model_copy(update={"content": [message.content[0].model_copy(update={"text": "edited"})]})
        await thread_store.store.save_item(thread.id, edited, ctx)
        assert (await store.load_thread_items(thread.id, None, 10, "asc", ctx)).data == [edited]
        await thread_store.store.delete_thread(thread.id, ctx)
        assert (await store.load_thread_items(thread.id, None, 10, "asc", ctx)).data == []
    finally:
        await store.close()
