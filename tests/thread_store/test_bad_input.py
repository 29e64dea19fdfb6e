"""Bad input: a clear gRPC status, never a crash and never a partial write."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import grpc
import pytest

from services.thread_store.client import thread_json
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from tests.thread_store.conftest import RunningThreadStore, start_thread_store
from tests.thread_store.helpers import Ctx, new_thread


def _principal(user_id: str) -> common_pb2.Principal:
    return common_pb2.Principal(user_id=user_id)


def _item(thread_id: str, **overrides: object) -> bytes:
    item = {
        "id": "msg_1",
        "thread_id": thread_id,
        "type": "assistant_message",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        "content": [{"type": "output_text", "text": "hi", "annotations": []}],
    }
    item.update(overrides)
    return json.dumps({k: v for k, v in item.items() if v is not None}).encode()


@pytest.fixture
async def thread_id(thread_store: RunningThreadStore, user_id: str) -> str:
    thread = new_thread()
    await thread_store.store.save_thread(thread, Ctx(user_id=user_id))
    return thread.id


CASES = [
    ("a missing principal", lambda tid, uid: ("GetThread", pb.GetThreadRequest(thread_id=tid)), "UNAUTHENTICATED"),
    (
        "an empty thread id",
        lambda tid, uid: ("GetThread", pb.GetThreadRequest(principal=_principal(uid))),
        "INVALID_ARGUMENT",
    ),
    (
        "an over-long id",
        lambda tid, uid: ("GetThread", pb.GetThreadRequest(principal=_principal(uid), thread_id="t" * 300)),
        "INVALID_ARGUMENT",
    ),
    (
        "an unknown thread",
        lambda tid, uid: ("GetThread", pb.GetThreadRequest(principal=_principal(uid), thread_id="thr_nope")),
        "NOT_FOUND",
    ),
    (
        "an unknown item",
        lambda tid, uid: ("GetItem", pb.GetItemRequest(principal=_principal(uid), thread_id=tid, item_id="msg_nope")),
        "NOT_FOUND",
    ),
    (
        "invalid item JSON",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(principal=_principal(uid), thread_id=tid, item_json=b"{not json"),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "item JSON that is not an object",
        lambda tid, uid: ("AddItem", pb.WriteItemRequest(principal=_principal(uid), thread_id=tid, item_json=b"[1,2]")),
        "INVALID_ARGUMENT",
    ),
    (
        "an item without an id",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(principal=_principal(uid), thread_id=tid, item_json=_item(tid, id=None)),
        ),
        "INVALID_ARGUMENT",
    ),
    # An item naming another thread is no bad input: it is stored in the thread
    # written to, as the SDK's reference store does (test_store_contract.py).
    (
        "an item with a bad time",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(principal=_principal(uid), thread_id=tid, item_json=_item(tid, created_at="yesterday")),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "an item with a NUL character",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(principal=_principal(uid), thread_id=tid, item_json=_item(tid, content="a\u0000b")),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "an oversized item",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(
                principal=_principal(uid), thread_id=tid, item_json=_item(tid, content="x" * (2 * 1024 * 1024))
            ),
        ),
        "RESOURCE_EXHAUSTED",
    ),
    (
        "an item for an unknown thread",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(principal=_principal(uid), thread_id="thr_nope", item_json=_item("thr_nope")),
        ),
        "NOT_FOUND",
    ),
    (
        "a negative page size",
        lambda tid, uid: ("ListItems", pb.ListItemsRequest(principal=_principal(uid), thread_id=tid, limit=-1)),
        "INVALID_ARGUMENT",
    ),
    (
        "a huge page size",
        lambda tid, uid: ("ListItems", pb.ListItemsRequest(principal=_principal(uid), thread_id=tid, limit=100000)),
        "INVALID_ARGUMENT",
    ),
    (
        "invalid thread JSON",
        lambda tid, uid: ("SaveThread", pb.SaveThreadRequest(principal=_principal(uid), thread_json=b"\xff\xfe")),
        "INVALID_ARGUMENT",
    ),
    (
        "a thread without created_at",
        lambda tid, uid: (
            "SaveThread",
            pb.SaveThreadRequest(principal=_principal(uid), thread_json=b'{"id": "thr_x"}'),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "an attachment without a name",
        lambda tid, uid: (
            "SaveAttachment",
            pb.SaveAttachmentRequest(
                principal=_principal(uid), attachment_json=b'{"id": "atc_x", "mime_type": "text/plain"}'
            ),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "a created_at Postgres would store as infinity",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(
                principal=_principal(uid), thread_id=tid, item_json=_item(tid, created_at="9999-12-31T23:59:59.999999")
            ),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "a created_at before year one in UTC",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(
                principal=_principal(uid), thread_id=tid, item_json=_item(tid, created_at="0001-01-01T00:00:00+14:00")
            ),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "NaN in an item",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(
                principal=_principal(uid), thread_id=tid, item_json=_item(tid).replace(b'"hi"', b'"hi", "score": NaN')
            ),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "Infinity in an item",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(
                principal=_principal(uid),
                thread_id=tid,
                item_json=_item(tid).replace(b'"hi"', b'"hi", "score": -Infinity'),
            ),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "a number past any float",
        lambda tid, uid: (
            "AddItem",
            pb.WriteItemRequest(
                principal=_principal(uid),
                thread_id=tid,
                item_json=_item(tid).replace(b'"hi"', b'"hi", "score": 1e1000000'),
            ),
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "a listing scope with a NUL character",
        lambda tid, uid: ("ListThreads", pb.ListThreadsRequest(principal=_principal(uid), scope="a\x00b")),
        "INVALID_ARGUMENT",
    ),
    (
        "a watch without a target",
        lambda tid, uid: ("Watch", pb.WatchRequest(principal=_principal(uid))),
        "INVALID_ARGUMENT",
    ),
]


@pytest.mark.parametrize(("case", "build", "status"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_gets_a_clear_status_and_writes_nothing(
    thread_store: RunningThreadStore, thread_id: str, user_id: str, case: str, build: object, status: str
) -> None:
    method, request = build(thread_id, user_id)  # type: ignore[operator]
    call = getattr(thread_store.store.stub, method)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if method == "Watch":
            async for _event in call(request):
                pass
        else:
            await call(request)
    assert caught.value.code().name == status
    assert caught.value.details() and "internal error" not in caught.value.details()
    page = await thread_store.store.load_thread_items(thread_id, None, 10, "asc", Ctx(user_id=user_id))
    assert page.data == []
    assert (await thread_store.store.load_thread(thread_id, Ctx(user_id=user_id))).id == thread_id


async def test_a_failed_write_leaves_the_thread_revision_unchanged(
    thread_store: RunningThreadStore, thread_id: str, user_id: str
) -> None:
    before = await thread_store.store.stub.GetThread(
        pb.GetThreadRequest(principal=_principal(user_id), thread_id=thread_id)
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await thread_store.store.stub.DeleteItem(
            pb.DeleteItemRequest(principal=_principal(user_id), thread_id=thread_id, item_id="msg_missing")
        )
    after = await thread_store.store.stub.GetThread(
        pb.GetThreadRequest(principal=_principal(user_id), thread_id=thread_id)
    )
    assert after.revision == before.revision


def test_thread_json_never_carries_items() -> None:
    thread = new_thread(title="t")
    assert b'"items"' not in thread_json(thread)


async def test_a_database_that_went_away_is_unavailable_not_internal(database_url: str, user_id: str) -> None:
    running = await start_thread_store(database_url, None)
    try:
        await running.service.repository._pool.close()  # every connection gone, as in an outage
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await running.store.stub.GetThread(pb.GetThreadRequest(principal=_principal(user_id), thread_id="thr_x"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "retry" in (caught.value.details() or "")
    finally:
        await running.store.close()
        await running.server.stop(grace=0)
