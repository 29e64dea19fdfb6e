"""BeginTurn: a turn starts with one call, and the cache and the feed stay as exact as with single writes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import timedelta

import grpc
import pytest
from chatkit.store import NotFoundError

from services.thread_store.cache import thread_key
from services.thread_store.client import GrpcThreadStore, item_json, thread_json
from services.thread_store.servicer import ThreadItemWireCodec
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.errors import InvalidArgument
from switchboard.redis_client import create_redis
from tests.thread_store.conftest import RunningThreadStore, start_thread_store
from tests.thread_store.helpers import Ctx, assistant_message, new_thread, times, user_message

# The cache's marker of fully cached items: the item codec's format.
FORMAT = ThreadItemWireCodec.format.encode()


@pytest.fixture(params=["cached", "uncached"])
def either_store(
    request: pytest.FixtureRequest, thread_store: RunningThreadStore, uncached_thread_store: RunningThreadStore
) -> RunningThreadStore:
    """The thread store with its Redis cache, then without."""
    return thread_store if request.param == "cached" else uncached_thread_store


async def _raw_thread(store: GrpcThreadStore, ctx: Ctx, thread_id: str) -> pb.Thread:
    reply: pb.Thread = await store.stub.GetThread(
        pb.GetThreadRequest(principal=common_pb2.Principal(user_id=ctx.user_id), thread_id=thread_id)
    )
    return reply


async def _ids(store: GrpcThreadStore, ctx: Ctx, thread_id: str) -> list[str]:
    return [i.id for i in (await store.load_thread_items(thread_id, None, 100, "asc", ctx)).data]


async def _conversation(store: GrpcThreadStore, ctx: Ctx) -> tuple[str, list[str]]:
    """A thread of u1, a1, u2, then three items at u2's time whose ids sort around it, then a2."""
    thread = new_thread(title="a conversation")
    await store.save_thread(thread, ctx)
    t = times(4)
    items = [
        user_message(thread.id, "first", at=t[0], item_id="msg_1"),
        assistant_message(thread.id, "one", at=t[1], item_id="msg_2"),
        user_message(thread.id, "second", at=t[2], item_id="msg_5"),
        assistant_message(thread.id, "same time, sorts before", at=t[2], item_id="msg_4"),
        assistant_message(thread.id, "same time, sorts after", at=t[2], item_id="msg_6"),
        assistant_message(thread.id, "two", at=t[3], item_id="msg_7"),
    ]
    for item in items:
        await store.add_thread_item(thread.id, item, ctx)
    return thread.id, await _ids(store, ctx, thread.id)


async def test_creating_a_thread_with_its_first_message_returns_the_titled_thread_and_the_message(
    either_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = either_store.store, Ctx(user_id=user_id)
    thread = new_thread(agent_id="billing")
    first = user_message(thread.id, "Where is my invoice?", at=times(1)[0])

    got, items = await store.begin_turn(
        ctx, thread_id=thread.id, create=thread, user_message=first, title_if_empty="Invoice", history_limit=10
    )

    assert got.id == thread.id
    assert got.title == "Invoice"
    assert got.metadata == {"agent_id": "billing"}
    assert items == [first]
    assert (await store.load_thread(thread.id, ctx)).title == "Invoice"
    assert await _ids(store, ctx, thread.id) == [first.id]


async def test_a_second_turn_returns_both_messages_oldest_first_and_keeps_the_title(
    either_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = either_store.store, Ctx(user_id=user_id)
    thread = new_thread()
    t = times(2)
    first, second = user_message(thread.id, "one", at=t[0]), user_message(thread.id, "two", at=t[1])
    await store.begin_turn(ctx, thread_id=thread.id, create=thread, user_message=first, title_if_empty="One")

    got, items = await store.begin_turn(
        ctx, thread_id=thread.id, user_message=second, title_if_empty="Two", history_limit=10
    )

    assert [i.id for i in items] == [first.id, second.id]
    assert got.title == "One"


async def test_history_limit_returns_only_the_newest_items_and_zero_returns_none(
    either_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = either_store.store, Ctx(user_id=user_id)
    thread_id, ids = await _conversation(store, ctx)
    newest = user_message(thread_id, "three", at=times(5)[4])

    _thread, items = await store.begin_turn(ctx, thread_id=thread_id, user_message=newest, history_limit=3)
    assert [i.id for i in items] == [*ids[-2:], newest.id]

    _thread, items = await store.begin_turn(ctx, thread_id=thread_id, history_limit=0)
    assert items == []


async def test_resending_the_same_turn_creates_and_saves_nothing_twice(
    either_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = either_store.store, Ctx(user_id=user_id)
    thread = new_thread(title="kept")
    message = user_message(thread.id, "hello", at=times(1)[0])
    await store.begin_turn(ctx, thread_id=thread.id, create=thread, user_message=message)

    renamed = thread.model_copy(update={"title": "not applied"})
    got, items = await store.begin_turn(
        ctx, thread_id=thread.id, create=renamed, user_message=message, history_limit=10
    )

    assert got.title == "kept", "an existing thread is kept as it is"
    assert [i.id for i in items] == [message.id]
    assert await _ids(store, ctx, thread.id) == [message.id]
    page = await store.load_threads(50, None, "desc", ctx)
    assert [t.id for t in page.data] == [thread.id]


async def test_retry_deletes_only_the_items_after_the_named_user_message(
    either_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = either_store.store, Ctx(user_id=user_id)
    thread_id, ids = await _conversation(store, ctx)
    assert ids == ["msg_1", "msg_2", "msg_4", "msg_5", "msg_6", "msg_7"]

    _thread, items = await store.begin_turn(ctx, thread_id=thread_id, retry_after_item_id="msg_5", history_limit=10)

    # msg_4 has msg_5's time but sorts before it (ties by id), so it stays.
    assert [i.id for i in items] == ["msg_1", "msg_2", "msg_4", "msg_5"]
    assert await _ids(store, ctx, thread_id) == ["msg_1", "msg_2", "msg_4", "msg_5"]


async def test_retry_after_an_item_that_is_not_a_user_message_is_refused_and_deletes_nothing(
    either_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = either_store.store, Ctx(user_id=user_id)
    thread_id, ids = await _conversation(store, ctx)
    revision = (await _raw_thread(store, ctx, thread_id)).revision

    with pytest.raises(InvalidArgument, match="user message"):
        await store.begin_turn(ctx, thread_id=thread_id, retry_after_item_id="msg_2", session_id="sess_x")
    with pytest.raises(NotFoundError):
        await store.begin_turn(ctx, thread_id=thread_id, retry_after_item_id="msg_nope", session_id="sess_x")

    assert await _ids(store, ctx, thread_id) == ids
    after = await _raw_thread(store, ctx, thread_id)
    assert after.revision == revision
    assert "session_id" not in json.loads(after.json).get("metadata", {})


async def test_another_users_thread_is_not_found_and_nothing_is_written(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    store, alice = thread_store.store, Ctx(user_id=user_id)
    thread_id, ids = await _conversation(store, alice)
    before = await _raw_thread(store, alice, thread_id)
    bob = Ctx(user_id=f"bob-{user_id}")
    hijack = user_message(thread_id, "injected", at=times(9)[8])
    impostor = new_thread(title="bob's").model_copy(update={"id": thread_id})

    with pytest.raises(NotFoundError):
        await store.begin_turn(bob, thread_id=thread_id, user_message=hijack, history_limit=10)
    with pytest.raises(NotFoundError):
        await store.begin_turn(bob, thread_id=thread_id, create=impostor, user_message=hijack, title_if_empty="x")
    with pytest.raises(NotFoundError):
        await store.begin_turn(bob, thread_id=thread_id, retry_after_item_id="msg_1")
    with pytest.raises(NotFoundError):
        await store.begin_turn(bob, thread_id=thread_id, history_limit=10)

    assert await _ids(store, alice, thread_id) == ids
    assert await _raw_thread(store, alice, thread_id) == before
    assert (await store.load_threads(50, None, "desc", bob)).data == [], "bob created no thread"


async def test_an_operator_of_the_threads_org_cannot_begin_a_turn(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, ids = await _conversation(store, owner)
    before = await _raw_thread(store, owner, thread_id)
    operator = Ctx(user_id=f"op-{uuid.uuid4().hex[:8]}", org_id=unique_org, roles=("operator",))
    # The operator may read the thread (the console does) ...
    assert (await store.load_thread(thread_id, operator)).id == thread_id

    # ... but never starts a turn in it, not even a read-only one.
    with pytest.raises(NotFoundError):
        await store.begin_turn(
            operator, thread_id=thread_id, user_message=user_message(thread_id, "as you", at=times(1)[0])
        )
    with pytest.raises(NotFoundError):
        await store.begin_turn(operator, thread_id=thread_id, session_id="sess_op", title_if_empty="op")
    with pytest.raises(NotFoundError):
        await store.begin_turn(operator, thread_id=thread_id, history_limit=10)

    assert await _ids(store, owner, thread_id) == ids
    assert await _raw_thread(store, owner, thread_id) == before


async def test_the_session_id_lands_in_the_metadata_and_an_unchanged_one_writes_nothing(
    either_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = either_store.store, Ctx(user_id=user_id)
    thread = new_thread(agent_id="support")
    await store.save_thread(thread, ctx)

    got, _items = await store.begin_turn(ctx, thread_id=thread.id, session_id="sess_1")
    assert got.metadata == {"agent_id": "support", "session_id": "sess_1"}
    revision = (await _raw_thread(store, ctx, thread.id)).revision

    got, _items = await store.begin_turn(ctx, thread_id=thread.id, session_id="sess_1")
    assert (await _raw_thread(store, ctx, thread.id)).revision == revision

    got, _items = await store.begin_turn(ctx, thread_id=thread.id, session_id="sess_2")
    assert (await store.load_thread(thread.id, ctx)).metadata == {"agent_id": "support", "session_id": "sess_2"}
    assert (await _raw_thread(store, ctx, thread.id)).revision == revision + 1


async def test_a_created_thread_gets_the_session_id_and_the_context_scope(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = thread_store.store, Ctx(user_id=user_id, scope="case-42")
    thread = new_thread()
    await store.begin_turn(ctx, thread_id=thread.id, create=thread, session_id="sess_9")
    raw = await _raw_thread(store, ctx, thread.id)
    assert raw.scope == "case-42"
    assert json.loads(raw.json)["metadata"]["session_id"] == "sess_9"
    assert raw.revision == 1, "the session id is part of the creation, not a second write"


async def test_cached_reads_after_turns_match_postgres_and_need_no_query(
    thread_store: RunningThreadStore, uncached_thread_store: RunningThreadStore, user_id: str
) -> None:
    cached, truth, ctx = thread_store.store, uncached_thread_store.store, Ctx(user_id=user_id)
    thread_id, _ids_before = await _conversation(cached, ctx)
    await cached.load_thread_items(thread_id, None, 100, "asc", ctx)  # warm: the turns patch into it
    # A retry (five deletes) and the session; then a new message and another session.
    await cached.begin_turn(ctx, thread_id=thread_id, retry_after_item_id="msg_1", session_id="sess_1")
    await cached.begin_turn(
        ctx,
        thread_id=thread_id,
        user_message=user_message(thread_id, "again", at=times(9)[8], item_id="msg_8"),
        session_id="sess_2",
    )

    counter = thread_store.queries
    before = counter.count
    hot_items = await cached.load_thread_items_raw(thread_id, None, 100, "asc", ctx)
    hot_thread = await _raw_thread(cached, ctx, thread_id)
    assert counter.count == before, "the reads were served from the cache"

    assert [i.id for i in hot_items.items] == ["msg_1", "msg_8"]
    assert hot_items.version  # a hot page can be revalidated; otherwise it is the page Postgres gives
    assert dataclasses.replace(hot_items, version="") == await truth.load_thread_items_raw(
        thread_id, None, 100, "asc", ctx
    )
    assert hot_thread == await _raw_thread(truth, ctx, thread_id)
    assert json.loads(hot_thread.json)["metadata"]["session_id"] == "sess_2"


async def test_a_turn_on_a_warm_thread_sends_two_statements_and_reads_its_history_from_the_cache(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = thread_store.store, Ctx(user_id=user_id)
    thread_id, ids = await _conversation(store, ctx)
    await store.begin_turn(ctx, thread_id=thread_id, session_id="sess_1", history_limit=30)  # warm
    message = user_message(thread_id, "next", at=times(9)[8])

    counter = thread_store.queries
    before = counter.count
    _thread, items = await store.begin_turn(
        ctx, thread_id=thread_id, user_message=message, session_id="sess_1", title_if_empty="x", history_limit=30
    )

    assert counter.count - before == 2  # lock the thread; save the message and advance the thread
    assert [i.id for i in items] == [*ids, message.id]


async def test_a_cold_cache_is_filled_by_the_turns_history_read(
    thread_store: RunningThreadStore, redis_url: str, user_id: str
) -> None:
    store, ctx = thread_store.store, Ctx(user_id=user_id)
    thread_id, ids = await _conversation(store, ctx)
    redis = create_redis(redis_url)
    try:
        await redis.delete(*(thread_key(user_id, thread_id, p) for p in ("state", "items", "order")))
        message = user_message(thread_id, "next", at=times(9)[8])
        _thread, items = await store.begin_turn(ctx, thread_id=thread_id, user_message=message, history_limit=2)
        assert [i.id for i in items] == [ids[-1], message.id]
        assert await redis.hget(thread_key(user_id, thread_id, "state"), "loaded") == FORMAT
        assert await redis.zcard(thread_key(user_id, thread_id, "order")) == len(ids) + 1
    finally:
        await redis.aclose()


async def _collect(stream: object, n: int) -> list[pb.ChangeEvent]:
    events: list[pb.ChangeEvent] = []
    async for event in stream:  # type: ignore[attr-defined]
        events.append(event)
        if len(events) == n:
            break
    return events


async def test_the_change_feed_gets_one_event_per_revision_in_order(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    store, ctx = thread_store.store, Ctx(user_id=user_id)
    thread_id, _ids_before = await _conversation(store, ctx)
    start = (await _raw_thread(store, ctx, thread_id)).revision
    changes = store.watch(ctx, thread_id=thread_id)
    assert (await asyncio.wait_for(anext(changes), 5)).type == "watch.started"  # live from here
    watcher = asyncio.create_task(_collect(changes, 4))

    await store.begin_turn(ctx, thread_id=thread_id, retry_after_item_id="msg_5", session_id="sess_1")
    message = user_message(thread_id, "again", at=times(9)[8])
    await store.begin_turn(ctx, thread_id=thread_id, user_message=message, session_id="sess_1")

    events = await asyncio.wait_for(watcher, 5)
    # The second turn's session id is unchanged: its message is its only change.
    assert [(e.type, e.item_id) for e in events] == [
        ("item.deleted", "msg_6"),
        ("item.deleted", "msg_7"),
        ("thread.updated", ""),
        ("item.added", message.id),
    ]
    assert [e.revision for e in events] == [start + 1, start + 2, start + 3, start + 4]
    assert json.loads(events[2].json)["metadata"]["session_id"] == "sess_1"
    assert json.loads(events[3].json)["id"] == message.id
    assert (await _raw_thread(store, ctx, thread_id)).revision == start + 4


async def test_turns_and_writes_racing_on_two_replicas_leave_no_stale_cache(
    database_url: str, redis_url: str, user_id: str
) -> None:
    a = await start_thread_store(database_url, redis_url)
    b = await start_thread_store(database_url, redis_url)
    try:
        ctx = Ctx(user_id=user_id)
        thread_id, _ids_before = await _conversation(a.store, ctx)
        await a.store.load_thread_items(thread_id, None, 100, "asc", ctx)
        stamps = times(30, start=times(9)[8])

        async def turn(i: int) -> None:
            message = user_message(thread_id, f"turn {i}", at=stamps[i], item_id=f"msg_t{i:02}")
            await a.store.begin_turn(
                ctx, thread_id=thread_id, user_message=message, session_id=f"sess_{i}", history_limit=50
            )

        async def reply(i: int) -> None:
            item = assistant_message(thread_id, f"reply {i}", at=stamps[i] + timedelta(milliseconds=1))
            await b.store.add_thread_item(thread_id, item, ctx)
            await b.store.load_thread_items(thread_id, None, 100, "asc", ctx)

        await asyncio.gather(*(turn(i) if i % 2 else reply(i) for i in range(30)))
        for running in (a, b):
            cached = await running.store.load_thread_items_raw(thread_id, None, 100, "asc", ctx)
            rows = await running.service.repository.list_items(thread_id=thread_id, after=None, limit=100, order="asc")
            assert [i.id for i in cached.items] == [r.id for r in rows.items]
            hot = await _raw_thread(running.store, ctx, thread_id)
            stored = await running.service.repository.load_thread(thread_id=thread_id, user_id=user_id)
            assert (hot.revision, hot.json) == (stored.revision, stored.json)
        assert len(rows.items) == 6 + 30
    finally:
        for running in (a, b):
            await running.store.close()
            await running.server.stop(grace=0)


def _request(thread_id: str, user_id: str, **fields: object) -> pb.BeginTurnRequest:
    return pb.BeginTurnRequest(principal=common_pb2.Principal(user_id=user_id), thread_id=thread_id, **fields)  # type: ignore[arg-type]


def _message(thread_id: str, **overrides: object) -> bytes:
    item = json.loads(item_json(user_message(thread_id, "hi", at=times(1)[0], item_id="msg_bad")))
    item.update(overrides)
    return json.dumps(item).encode()


BAD_REQUESTS: list[tuple[str, Callable[[str, str], pb.BeginTurnRequest]]] = [
    ("an empty thread id", lambda tid, uid: _request("", uid)),
    ("message JSON that does not parse", lambda tid, uid: _request(tid, uid, user_message_json=b"{not json")),
    ("message JSON that is not an object", lambda tid, uid: _request(tid, uid, user_message_json=b"[1]")),
    ("a message for another thread", lambda tid, uid: _request(tid, uid, user_message_json=_message("thr_other"))),
    (
        "a message that is not a user message",
        lambda tid, uid: _request(tid, uid, user_message_json=_message(tid, type="assistant_message")),
    ),
    (
        "a message with an unpaired surrogate",
        lambda tid, uid: _request(tid, uid, user_message_json=_message(tid).replace(b'"hi"', b'"\\ud800"')),
    ),
    (
        "a message nested too deeply",
        lambda tid, uid: _request(tid, uid, user_message_json=b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ),
    (
        "both a message and a retry",
        lambda tid, uid: _request(tid, uid, user_message_json=_message(tid), retry_after_item_id="msg_1"),
    ),
    ("a negative history limit", lambda tid, uid: _request(tid, uid, history_limit=-1)),
    ("a history limit over 1000", lambda tid, uid: _request(tid, uid, history_limit=1001)),
    ("thread JSON that does not parse", lambda tid, uid: _request(tid, uid, create_thread_json=b"nope")),
    (
        "thread JSON of another id",
        lambda tid, uid: _request(tid, uid, create_thread_json=thread_json(new_thread())),
    ),
    ("a title with a NUL", lambda tid, uid: _request(tid, uid, title_if_empty="a\x00b")),
    ("an over-long session id", lambda tid, uid: _request(tid, uid, session_id="s" * 300)),
]


@pytest.mark.parametrize(("case", "build"), BAD_REQUESTS, ids=[c for c, _ in BAD_REQUESTS])
async def test_bad_input_is_invalid_argument_and_writes_nothing(
    thread_store: RunningThreadStore, user_id: str, case: str, build: Callable[[str, str], pb.BeginTurnRequest]
) -> None:
    store, ctx = thread_store.store, Ctx(user_id=user_id)
    thread_id, ids = await _conversation(store, ctx)
    before = await _raw_thread(store, ctx, thread_id)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await store.stub.BeginTurn(build(thread_id, user_id))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert await _ids(store, ctx, thread_id) == ids
    assert await _raw_thread(store, ctx, thread_id) == before
