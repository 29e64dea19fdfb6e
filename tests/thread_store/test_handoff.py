"""The hand-off: who answers a thread, who may change it, and who may write what while a person answers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

import asyncpg
import psycopg
import pytest

from services.thread_store.cache import decode_thread, encode_thread, thread_key
from services.thread_store.client import HandledThread, Handler, HandlerKind, handler_of, item_from_json, thread_json
from services.thread_store.domain import ChangeEvent, ItemRecord, ThreadRecord
from services.thread_store.service import decide_handler
from services.thread_store.servicer import ThreadItemWireCodec
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from switchboard.migrate import apply_migrations
from switchboard.principal import Principal
from switchboard.redis_client import create_redis
from tests.thread_store.conftest import RunningThreadStore, start_thread_store
from tests.thread_store.helpers import Ctx, assistant_message, new_thread, times, user_message


@pytest.fixture(params=["cached", "uncached"])
def either_store(
    request: pytest.FixtureRequest, thread_store: RunningThreadStore, uncached_thread_store: RunningThreadStore
) -> RunningThreadStore:
    """The thread store with its Redis cache, then without."""
    return thread_store if request.param == "cached" else uncached_thread_store


def _operator(org_id: str, name: str = "op") -> Ctx:
    return Ctx(user_id=f"{name}-{uuid.uuid4().hex[:8]}", org_id=org_id, roles=("operator",))


def _principal(ctx: Ctx) -> common_pb2.Principal:
    return common_pb2.Principal(user_id=ctx.user_id, org_id=ctx.org_id or "", roles=list(ctx.roles))


async def _conversation(store: RunningThreadStore, owner: Ctx) -> tuple[str, str]:
    """A thread of ``owner`` with one user message: the thread id and the message id."""
    thread = new_thread(title="needs a human")
    await store.store.save_thread(thread, owner)
    message = user_message(thread.id, "I want a person", at=times(1)[0])
    await store.store.add_thread_item(thread.id, message, owner)
    return thread.id, message.id


async def _raw_items(store: RunningThreadStore, ctx: Ctx, thread_id: str) -> list[ItemRecord]:
    reply = await store.store.load_thread_items_raw(thread_id, None, 100, "asc", ctx)
    return list(reply.items)


async def _revision(store: RunningThreadStore, owner: Ctx, thread_id: str) -> int:
    reply: pb.Thread = await store.store.stub.GetThread(
        pb.GetThreadRequest(principal=_principal(owner), thread_id=thread_id)
    )
    return reply.revision


# -- who may change the handler ------------------------------------------------------------


async def test_the_owner_escalates_then_withdraws_and_each_change_is_one_revision(
    either_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = either_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(either_store, owner)
    revision = await _revision(either_store, owner, thread_id)
    asked_at = datetime.now(UTC)

    waiting = await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_1", waiting_seconds=600)

    assert (waiting.handler.kind, waiting.handler.escalation_id, waiting.handler.operator_id) == (
        "waiting",
        "esc_1",
        None,
    )
    assert waiting.handler.until is not None and waiting.handler.since is not None
    assert abs(waiting.handler.until - (asked_at + timedelta(seconds=600))) < timedelta(seconds=5)
    assert waiting.revision == revision + 1
    assert (waiting.user_id, waiting.org_id, waiting.thread.id) == (user_id, unique_org, thread_id)
    assert handler_of(waiting.thread) == waiting.handler
    assert handler_of(await store.load_thread(thread_id, owner)) == waiting.handler
    assert await store.load_handler(thread_id, owner) == waiting.handler

    withdrawn = await store.set_handler(owner, thread_id, "agent")

    assert withdrawn.handler.kind == "agent"
    assert (withdrawn.handler.escalation_id, withdrawn.handler.operator_id, withdrawn.handler.until) == (None,) * 3
    assert withdrawn.revision == revision + 2
    assert "handler" not in (await store.load_thread(thread_id, owner)).metadata
    assert handler_of(await store.load_thread(thread_id, owner)) == Handler()


async def test_an_operator_takes_over_and_a_second_operator_can_neither_take_it_nor_write(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_2", waiting_seconds=600)
    sam, kim = _operator(unique_org, "sam"), _operator(unique_org, "kim")

    taken = await store.set_handler(sam, thread_id, "human", expect_kind="waiting")

    assert (taken.handler.kind, taken.handler.operator_id) == ("human", sam.user_id)
    assert taken.handler.escalation_id == "esc_2", "taking over without an escalation id keeps the current one"
    assert taken.handler.until is None
    with pytest.raises(FailedPrecondition, match=sam.user_id):
        await store.set_handler(kim, thread_id, "human")
    with pytest.raises(PermissionDenied, match="take it over first"):
        await store.add_thread_item(thread_id, assistant_message(thread_id, "me too", at=times(3)[2]), kim)
    with pytest.raises(PermissionDenied, match=sam.user_id):
        await store.set_handler(kim, thread_id, "agent")
    with pytest.raises(PermissionDenied):
        await store.set_handler(kim, thread_id, "waiting", escalation_id="esc_x", waiting_seconds=60)
    assert await store.load_handler(thread_id, owner) == taken.handler
    assert [i.type for i in await _raw_items(thread_store, owner, thread_id)] == ["user_message"]


async def test_the_holders_reply_is_stored_as_theirs_and_the_owner_reads_it(
    either_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = either_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, message_id = await _conversation(either_store, owner)
    await _raw_items(either_store, owner, thread_id)  # the owner's read fills the cache first
    sam = _operator(unique_org, "sam")
    await store.set_handler(sam, thread_id, "human", escalation_id="esc_3")

    reply = assistant_message(thread_id, "Hi, I'm Sam.", at=times(2)[1])
    await store.add_thread_item(thread_id, reply, sam)

    items = await _raw_items(either_store, owner, thread_id)
    assert [(i.id, i.author) for i in items] == [(message_id, user_id), (reply.id, sam.user_id)]
    stored: pb.ThreadItem = await store.stub.GetItem(
        pb.GetItemRequest(principal=_principal(owner), thread_id=thread_id, item_id=reply.id)
    )
    assert stored.author == sam.user_id
    assert (await store.load_item(thread_id, reply.id, owner)).content[0].text == "Hi, I'm Sam."  # type: ignore[union-attr]
    # The holder edits their own reply.
    edited = reply.model_copy(update={"content": [reply.content[0].model_copy(update={"text": "Hi, Sam here."})]})
    await store.save_item(thread_id, edited, sam)
    assert (await store.load_item(thread_id, reply.id, owner)).content[0].text == "Hi, Sam here."  # type: ignore[union-attr]


async def test_an_operator_cannot_overwrite_the_users_message_by_its_id(
    either_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = either_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, message_id = await _conversation(either_store, owner)
    original = await store.load_item(thread_id, message_id, owner)
    revision = await _revision(either_store, owner, thread_id)
    sam = _operator(unique_org, "sam")
    await store.set_handler(sam, thread_id, "human")

    forged = assistant_message(thread_id, "the user never said this", at=times(1)[0], item_id=message_id)
    with pytest.raises(PermissionDenied, match="another author"):
        await store.save_item(thread_id, forged, sam)
    with pytest.raises(PermissionDenied, match="another author"):
        await store.add_thread_item(thread_id, forged, sam)

    assert await store.load_item(thread_id, message_id, owner) == original
    [item] = await _raw_items(either_store, owner, thread_id)
    assert (item.author, item_from_json(item.json)) == (user_id, original)
    assert await _revision(either_store, owner, thread_id) == revision + 1, "only the take-over took a revision"


async def test_an_operator_who_does_not_hold_the_thread_cannot_write_into_it(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    sam = _operator(unique_org, "sam")
    reply = assistant_message(thread_id, "unasked", at=times(2)[1])

    with pytest.raises(PermissionDenied, match="only the operator holding this conversation"):
        await store.add_thread_item(thread_id, reply, sam)  # the agent answers
    await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_4", waiting_seconds=60)
    with pytest.raises(PermissionDenied, match="take it over first"):
        await store.add_thread_item(thread_id, reply, sam)  # nobody holds it yet

    assert [i.type for i in await _raw_items(thread_store, owner, thread_id)] == ["user_message"]


async def test_the_holder_hands_back_and_then_may_no_longer_write(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    sam = _operator(unique_org, "sam")
    await store.set_handler(sam, thread_id, "human", escalation_id="esc_5")

    back = await store.set_handler(sam, thread_id, "agent", expect_kind="human")

    assert back.handler.kind == "agent"
    assert (back.handler.operator_id, back.handler.escalation_id) == (None, None)
    with pytest.raises(PermissionDenied, match="take it over first"):
        await store.add_thread_item(thread_id, assistant_message(thread_id, "late", at=times(3)[2]), sam)


async def test_the_owner_can_neither_take_over_nor_end_a_persons_hand_off(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)

    with pytest.raises(PermissionDenied, match="only an operator"):
        await store.set_handler(owner, thread_id, "human")
    # Not even an owner who is an operator of the org: an owner does not answer their own thread.
    with pytest.raises(PermissionDenied, match="only an operator"):
        await store.set_handler(Ctx(user_id=user_id, org_id=unique_org, roles=("operator",)), thread_id, "human")
    sam = _operator(unique_org, "sam")
    held = (await store.set_handler(sam, thread_id, "human")).handler
    with pytest.raises(PermissionDenied, match="only they can hand it back"):
        await store.set_handler(owner, thread_id, "agent")
    with pytest.raises(PermissionDenied, match="only they can hand it back"):
        await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_6", waiting_seconds=60)

    assert await store.load_handler(thread_id, owner) == held


async def test_another_orgs_operator_and_another_user_do_not_find_the_thread(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    outsiders = [
        _operator(f"other-{unique_org}"),
        Ctx(user_id=f"mallory-{uuid.uuid4().hex[:6]}", org_id=unique_org),  # same org, not an operator
        Ctx(user_id=f"mallory-{uuid.uuid4().hex[:6]}"),
    ]
    for outsider in outsiders:
        with pytest.raises(NotFound):
            await store.set_handler(outsider, thread_id, "human")
        with pytest.raises(NotFound):
            await store.set_handler(outsider, thread_id, "waiting", escalation_id="esc_7", waiting_seconds=60)
        with pytest.raises(NotFound):
            await store.set_handler(outsider, thread_id, "agent")
        with pytest.raises(NotFound):
            await store.load_handler(thread_id, outsider)
    assert await store.load_handler(thread_id, owner) == Handler()


async def test_an_expected_kind_that_differs_changes_nothing(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    sam = _operator(unique_org, "sam")
    revision = await _revision(thread_store, owner, thread_id)

    with pytest.raises(FailedPrecondition, match="not 'waiting'"):
        await store.set_handler(sam, thread_id, "human", expect_kind="waiting")
    with pytest.raises(FailedPrecondition):
        await store.set_handler(
            owner, thread_id, "waiting", escalation_id="esc_8", waiting_seconds=9, expect_kind="human"
        )

    assert await _revision(thread_store, owner, thread_id) == revision
    assert await store.load_handler(thread_id, owner) == Handler()
    taken = await store.set_handler(sam, thread_id, "human", expect_kind="agent")
    assert taken.handler.kind == "human" and taken.revision == revision + 1


async def test_asking_for_the_current_state_again_takes_no_revision(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    sam = _operator(unique_org, "sam")

    revision = await _revision(thread_store, owner, thread_id)
    agent = await store.set_handler(owner, thread_id, "agent")
    first = await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_9", waiting_seconds=60)
    again = await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_9", waiting_seconds=300)
    taken = await store.set_handler(sam, thread_id, "human")
    retaken = await store.set_handler(sam, thread_id, "human", escalation_id="esc_9")

    assert [agent.revision, first.revision, taken.revision] == [revision, revision + 1, revision + 2]
    assert again == first, "the same wait again keeps its deadline and revision"
    assert retaken == taken
    assert await _revision(thread_store, owner, thread_id) == revision + 2
    # An operator's queueing of an agent thread, and the wait for another escalation meanwhile.
    await store.set_handler(sam, thread_id, "agent")
    queued = await store.set_handler(sam, thread_id, "waiting", escalation_id="esc_10", waiting_seconds=60)
    assert (queued.handler.kind, queued.handler.escalation_id) == ("waiting", "esc_10")
    with pytest.raises(FailedPrecondition, match="esc_10"):
        await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_11", waiting_seconds=60)


async def test_malformed_hand_off_requests_are_invalid_arguments(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id)
    thread_id, _ = await _conversation(thread_store, owner)
    bad: list[tuple[dict[str, object], str]] = [
        ({"kind": "robot"}, "kind must be one of"),
        ({"kind": "waiting", "waiting_seconds": 60}, "needs the escalation_id"),
        ({"kind": "waiting", "escalation_id": "esc", "waiting_seconds": 0}, "between 1 and 86400"),
        ({"kind": "waiting", "escalation_id": "esc", "waiting_seconds": 86401}, "between 1 and 86400"),
        ({"kind": "waiting", "escalation_id": "esc", "waiting_seconds": -5}, "between 1 and 86400"),
        ({"kind": "human", "waiting_seconds": 60}, "applies only to kind 'waiting'"),
        ({"kind": "agent", "escalation_id": "esc"}, "applies only to kinds"),
        ({"kind": "agent", "expect_kind": "robot"}, "expect_kind must be one of"),
        ({"kind": "human", "escalation_id": "e\x00"}, "NUL"),
        ({"kind": "human", "escalation_id": "e" * 300}, "longer than"),
        ({"kind": "agent", "thread_id": ""}, "thread_id is empty"),
    ]
    for fields, message in bad:
        request = pb.SetHandlerRequest(principal=_principal(owner), thread_id=thread_id)
        for key, value in fields.items():
            setattr(request, key, value)
        with pytest.raises(InvalidArgument, match=message):
            await store._call("SetHandler", request)
    for limit in (-1, 501):
        with pytest.raises(InvalidArgument, match="limit"):
            await store.expire_waiting(limit)
    assert await store.load_handler(thread_id, owner) == Handler()


def test_a_handler_round_trips_through_json_and_garbage_is_the_agent() -> None:
    handler = Handler(
        kind="waiting",
        escalation_id="esc",
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
    )
    assert Handler.from_json(json.loads(json.dumps(handler.to_json()))) == handler
    for garbage in (None, "human", {"kind": "boss"}, [1], {}):
        assert Handler.from_json(garbage) == Handler()
    assert Handler.from_json({"kind": "human", "operator_id": 7, "since": "yesterday"}) == Handler(kind="human")


# -- waits that run out ----------------------------------------------------------------------


@pytest.fixture
async def sweep_store(server_database_url: str, redis_url: str) -> AsyncIterator[RunningThreadStore]:
    """A thread store on a database of its own: no other test's (or service's) sweep takes its waits."""
    name = f"sbsweep_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = server_database_url.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(apply_migrations, url)
    running = await start_thread_store(url, redis_url)
    try:
        yield running
    finally:
        await running.store.close()
        await running.server.stop(grace=0)
        with psycopg.connect(server_database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


async def test_expired_waits_go_back_to_the_agent_once_even_with_two_concurrent_sweeps(
    sweep_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = sweep_store.store, Ctx(user_id=user_id, org_id=unique_org)
    expiring: dict[str, str] = {}
    for n in range(12):
        thread_id, _ = await _conversation(sweep_store, owner)
        await store.set_handler(owner, thread_id, "waiting", escalation_id=f"esc_exp_{n}", waiting_seconds=1)
        expiring[thread_id] = f"esc_exp_{n}"
    lasting, _ = await _conversation(sweep_store, owner)
    await store.set_handler(owner, lasting, "waiting", escalation_id="esc_lasting", waiting_seconds=3600)
    for thread_id in expiring:
        await store.load_thread(thread_id, owner)  # cached as waiting
    await asyncio.sleep(1.1)

    returned: list[HandledThread] = []
    for _ in range(10):  # small batches, so both sweeps find work
        a, b = await asyncio.gather(store.expire_waiting(3), store.expire_waiting(3))
        returned += a + b
        if not a + b:
            break

    assert sorted(t.thread.id for t in returned) == sorted(expiring), (
        "each expired thread exactly once, never the lasting one"
    )
    for handled in returned:
        assert handled.handler.kind == "agent" and handled.handler.operator_id is None
        assert handled.handler.escalation_id == expiring[handled.thread.id], "the escalation stays in the queue"
        assert handled.user_id == user_id and handled.org_id == unique_org
        assert handler_of(handled.thread) == Handler(), "an agent thread carries no handler key"
        assert await store.load_handler(handled.thread.id, owner) == handled.handler  # the cache was updated
    assert (await store.load_handler(lasting, owner)).kind == "waiting"


# -- the cache and the change feed -------------------------------------------------------------


async def test_the_handler_and_the_authors_survive_the_cache(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, message_id = await _conversation(thread_store, owner)
    sam = _operator(unique_org, "sam")
    held = (await store.set_handler(sam, thread_id, "human", escalation_id="esc_c")).handler
    reply = assistant_message(thread_id, "Sam here", at=times(2)[1])
    await store.add_thread_item(thread_id, reply, sam)

    first = (await store.load_handler(thread_id, owner), await _raw_items(thread_store, owner, thread_id))
    before = thread_store.queries.count
    second = (await store.load_handler(thread_id, owner), await _raw_items(thread_store, owner, thread_id))
    assert thread_store.queries.count == before, "the second read is served from the cache"

    for handler, items in (first, second):
        assert handler == held
        assert [(i.id, i.author) for i in items] == [(message_id, user_id), (reply.id, sam.user_id)]
    assert handler_of(await store.load_thread(thread_id, owner)) == held
    turn: pb.BeginTurnResponse = await store.stub.BeginTurn(
        pb.BeginTurnRequest(principal=_principal(owner), thread_id=thread_id, history_limit=10)
    )
    assert turn.thread.handler.operator_id == sam.user_id
    assert [i.author for i in turn.items] == [user_id, sam.user_id]


async def test_items_cached_before_authors_existed_are_read_as_the_owners(
    thread_store: RunningThreadStore, redis_url: str, user_id: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id)
    thread_id, message_id = await _conversation(thread_store, owner)
    await _raw_items(thread_store, owner, thread_id)  # cached
    record = await thread_store.service.repository.load_item(thread_id=thread_id, item_id=message_id)
    authorless = pb.ThreadItem(id=record.id, thread_id=thread_id, type=record.type, json=record.json)
    state, items_key = thread_key(user_id, thread_id, "state"), thread_key(user_id, thread_id, "items")
    redis = create_redis(redis_url)
    try:
        # An entry of the current format holding an item without author (a replica of the
        # previous release patched it in): BeginTurn, which decodes cached items, fills in the owner.
        await redis.hset(items_key, message_id, authorless.SerializeToString())
        turn: pb.BeginTurnResponse = await store.stub.BeginTurn(
            pb.BeginTurnRequest(principal=_principal(owner), thread_id=thread_id, history_limit=10)
        )
        assert [(i.id, i.author) for i in turn.items] == [(message_id, user_id)]
        # An entry written by the previous release (format "1"): a miss, refilled from Postgres.
        await redis.hset(state, "loaded", "1")
        before = thread_store.queries.count
        [item] = await _raw_items(thread_store, owner, thread_id)
        assert thread_store.queries.count > before
        assert item.author == user_id
        assert await redis.hget(state, "loaded") == ThreadItemWireCodec.format.encode()
        [item] = await _raw_items(thread_store, owner, thread_id)
        assert item.author == user_id
    finally:
        await redis.aclose()


def test_a_thread_cached_before_the_hand_off_existed_decodes_as_the_agents() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    thread = ThreadRecord(
        id="thr_old",
        user_id="u",
        org_id=None,
        scope=None,
        title=None,
        status="active",
        json=b"{}",
        created_at=at,
        updated_at=at,
        revision=3,
    )
    head, body = encode_thread(thread).split(b"\x00", 1)
    assert b"handler" not in head
    assert decode_thread(head + b"\x00" + body).handler == Handler()
    held = Handler(kind="human", operator_id="op", escalation_id="esc", since=at)
    assert decode_thread(encode_thread(replace(thread, handler=held))) == replace(thread, handler=held)


async def _started(stream: AsyncIterator[ChangeEvent]) -> None:
    first = await asyncio.wait_for(anext(stream), 5)
    assert first.type == "watch.started"


async def test_each_hand_off_change_is_a_thread_handler_event_carrying_the_handler(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    sam = _operator(unique_org, "sam")
    changes = store.watch(sam, org=True)
    await _started(changes)

    waiting = await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_f", waiting_seconds=60)
    await store.set_handler(owner, thread_id, "waiting", escalation_id="esc_f", waiting_seconds=60)  # no change
    taken = await store.set_handler(sam, thread_id, "human")

    events = [await asyncio.wait_for(anext(changes), 5) for _ in range(2)]
    assert [(e.type, e.thread_id) for e in events] == [("thread.handler", thread_id)] * 2
    assert [e.revision for e in events] == [waiting.revision, taken.revision]
    assert json.loads(events[0].json) == waiting.handler.to_json()
    assert json.loads(events[1].json) == taken.handler.to_json()
    assert (taken.handler.operator_id, taken.handler.escalation_id) == (sam.user_id, "esc_f")


# -- the handler is the store's ----------------------------------------------------------------


async def test_a_forged_handler_in_the_threads_metadata_changes_nothing(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    forged = {"kind": "human", "operator_id": user_id, "escalation_id": "esc_forged"}
    thread = new_thread(title="forged", handler=forged, keep="me")
    await store.save_thread(thread, owner)

    assert await store.load_handler(thread.id, owner) == Handler()
    assert (await store.load_thread(thread.id, owner)).metadata == {"keep": "me"}

    # A thread that waits, read and saved back as ChatKit does, keeps its handler, and the
    # stored JSON never holds the key: the handler lives in its own columns.
    waiting = await store.set_handler(owner, thread.id, "waiting", escalation_id="esc_w", waiting_seconds=60)
    loaded = await store.load_thread(thread.id, owner)
    assert handler_of(loaded) == waiting.handler
    await store.save_thread(loaded.model_copy(update={"title": "renamed"}), owner)
    await store.save_thread(loaded.model_copy(update={"metadata": {**loaded.metadata, "handler": forged}}), owner)
    raw: pb.Thread = await store.stub.GetThread(pb.GetThreadRequest(principal=_principal(owner), thread_id=thread.id))
    assert "handler" not in json.loads(raw.json)["metadata"]
    assert await store.load_handler(thread.id, owner) == waiting.handler

    # Nor through BeginTurn's creation.
    created = new_thread(handler=forged)
    turn: pb.BeginTurnResponse = await store.stub.BeginTurn(
        pb.BeginTurnRequest(principal=_principal(owner), thread_id=created.id, create_thread_json=thread_json(created))
    )
    assert turn.thread.handler.kind in ("", "agent")
    assert "handler" not in json.loads(turn.thread.json)["metadata"]


async def test_thread_reads_and_listings_carry_the_handler(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    sam = _operator(unique_org, "sam")
    held = (await store.set_handler(sam, thread_id, "human", escalation_id="esc_l")).handler

    page = await store.load_threads_page(limit=50, after=None, order="desc", context=owner)
    assert [handler_of(t) for t in page.data if t.id == thread_id] == [held]
    [listed] = [t for t in (await store.load_org_threads(sam)).data if t.thread.id == thread_id]
    assert listed.handler == held and handler_of(listed.thread) == held
    assert (listed.handler.kind, listed.handler.operator_id, listed.handler.escalation_id) == (
        "human",
        sam.user_id,
        "esc_l",
    )
    thread, _items = await store.begin_turn(owner, thread_id=thread_id)
    assert handler_of(thread) == held
    assert await store.load_handler(thread_id, sam) == held
    assert (
        await store.thread_owner(thread_id, sam) == await store.thread_owner(thread_id, owner) == (user_id, unique_org)
    )
    with pytest.raises(NotFound):
        await store.thread_owner(thread_id, _operator(f"other-{unique_org}"))


# -- nobody rewrites or deletes another author's items -----------------------------------------


async def _with_operator_reply(store: RunningThreadStore, owner: Ctx, org_id: str) -> tuple[str, str, str, Ctx]:
    thread_id, message_id = await _conversation(store, owner)
    sam = _operator(org_id, "sam")
    await store.store.set_handler(sam, thread_id, "human")
    reply = assistant_message(thread_id, "Sam here", at=times(2)[1])
    await store.store.add_thread_item(thread_id, reply, sam)
    return thread_id, message_id, reply.id, sam


async def test_a_retry_past_an_operators_reply_is_refused_and_deletes_nothing(
    either_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = either_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, message_id, reply_id, _sam = await _with_operator_reply(either_store, owner, unique_org)
    revision = await _revision(either_store, owner, thread_id)

    with pytest.raises(FailedPrecondition, match="an operator replied after"):
        await store.begin_turn(owner, thread_id=thread_id, retry_after_item_id=message_id, history_limit=5)

    assert [i.id for i in await _raw_items(either_store, owner, thread_id)] == [message_id, reply_id]
    assert await _revision(either_store, owner, thread_id) == revision


async def test_the_owner_cannot_delete_or_overwrite_an_operators_item(
    either_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store, owner = either_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, message_id, reply_id, sam = await _with_operator_reply(either_store, owner, unique_org)
    reply = await store.load_item(thread_id, reply_id, owner)

    with pytest.raises(PermissionDenied, match="another author"):
        await store.delete_thread_item(thread_id, reply_id, owner)
    with pytest.raises(PermissionDenied, match="another author"):
        await store.save_item(
            thread_id, assistant_message(thread_id, "agent's", at=times(1)[0], item_id=reply_id), owner
        )
    with pytest.raises(PermissionDenied, match="another author"):
        await store.begin_turn(
            owner, thread_id=thread_id, user_message=user_message(thread_id, "mine", at=times(1)[0], item_id=reply_id)
        )
    with pytest.raises(NotFound):  # operators delete nothing in a user's thread
        await store._call(
            "DeleteItem",
            pb.DeleteItemRequest(principal=_principal(sam), thread_id=thread_id, item_id=message_id),
            not_found=False,
        )

    assert await store.load_item(thread_id, reply_id, owner) == reply
    assert [(i.id, i.author) for i in await _raw_items(either_store, owner, thread_id)] == [
        (message_id, user_id),
        (reply_id, sam.user_id),
    ]
    await store.delete_thread_item(thread_id, message_id, owner)  # their own item, still
    assert [i.id for i in await _raw_items(either_store, owner, thread_id)] == [reply_id]


async def test_a_reply_waiting_on_a_hand_back_is_refused_once_the_hand_back_commits(
    thread_store: RunningThreadStore, database_url: str, user_id: str, unique_org: str
) -> None:
    store, owner = thread_store.store, Ctx(user_id=user_id, org_id=unique_org)
    thread_id, _ = await _conversation(thread_store, owner)
    sam = _operator(unique_org, "sam")
    await store.set_handler(sam, thread_id, "human")
    conn = await asyncpg.connect(database_url)
    try:
        # A hand-back in flight: it holds the thread's row lock and has changed the handler.
        hand_back = conn.transaction()
        await hand_back.start()
        await conn.execute(
            "UPDATE threads SET handler = 'agent', handler_operator = NULL, revision = revision + 1 WHERE id = $1",
            thread_id,
        )
        reply = asyncio.create_task(
            store.add_thread_item(thread_id, assistant_message(thread_id, "too late", at=times(2)[1]), sam)
        )
        await asyncio.sleep(0.3)
        assert not reply.done(), "the reply waits for the hand-back's lock"
        await hand_back.commit()
        with pytest.raises(PermissionDenied, match="take it over first"):
            await reply
    finally:
        await conn.close()
    assert [i.type for i in await _raw_items(thread_store, owner, thread_id)] == ["user_message"]


# -- the rules, one by one ---------------------------------------------------------------------

OWNER, SAM, KIM = "owner", "sam", "kim"
AT = datetime(2026, 1, 1, tzinfo=UTC)
STATES = {
    "agent": Handler(),
    "waiting": Handler(kind="waiting", escalation_id="esc", since=AT, until=AT),
    "human-sam": Handler(kind="human", operator_id=SAM, escalation_id="esc", since=AT),
}
# (who, current state, target kind) -> outcome: a resulting (kind, operator, escalation), "same",
# or the error type.
RULES: list[tuple[str, str, str, object]] = [
    (OWNER, "agent", "waiting", ("waiting", None, "esc")),
    (OWNER, "waiting", "agent", ("agent", None, None)),
    (OWNER, "agent", "agent", "same"),
    (OWNER, "waiting", "waiting", "same"),
    (OWNER, "agent", "human", PermissionDenied),
    (OWNER, "waiting", "human", PermissionDenied),
    (OWNER, "human-sam", "agent", PermissionDenied),
    (OWNER, "human-sam", "waiting", PermissionDenied),
    (OWNER, "human-sam", "human", PermissionDenied),
    (SAM, "agent", "human", ("human", SAM, None)),
    (SAM, "waiting", "human", ("human", SAM, "esc")),
    (SAM, "human-sam", "human", "same"),
    (SAM, "human-sam", "agent", ("agent", None, None)),
    (SAM, "waiting", "agent", ("agent", None, None)),
    (SAM, "agent", "waiting", ("waiting", None, "esc")),
    (SAM, "human-sam", "waiting", FailedPrecondition),
    (KIM, "human-sam", "human", FailedPrecondition),
    (KIM, "human-sam", "agent", PermissionDenied),
    (KIM, "human-sam", "waiting", PermissionDenied),
]


@pytest.mark.parametrize(("who", "state", "kind", "outcome"), RULES)
def test_who_may_change_the_handler(who: str, state: str, kind: str, outcome: object) -> None:
    principal = Principal(user_id=who, org_id="org", roles=() if who == OWNER else ("operator",))
    thread = ThreadRecord(
        id="thr",
        user_id=OWNER,
        org_id="org",
        scope=None,
        title=None,
        status="active",
        json=b"{}",
        created_at=AT,
        updated_at=AT,
        revision=1,
        handler=STATES[state],
    )
    target = cast(HandlerKind, kind)

    def decide() -> object:
        return decide_handler(
            principal,
            thread,
            target,
            escalation_id="esc" if kind == "waiting" else None,
            waiting_seconds=60 if kind == "waiting" else 0,
            expect_kind=None,
        )

    if isinstance(outcome, type):
        with pytest.raises(outcome):
            decide()
    elif outcome == "same":
        assert decide() is None
    else:
        change = decide()
        assert change is not None
        assert (change.kind, change.operator_id, change.escalation_id) == outcome  # type: ignore[attr-defined]


def test_cached_items_carry_their_author() -> None:
    record = ItemRecord(id="i", thread_id="t", type="user_message", json=b"{}", created_at=AT, author="op-1")
    assert pb.ThreadItem.FromString(ThreadItemWireCodec().encode(record)).author == "op-1"
