"""Operators reply into their org's threads once they hold them (the take-over); nobody else writes into a thread."""

from __future__ import annotations

import uuid

import pytest
from chatkit.store import NotFoundError

from switchboard.errors import PermissionDenied
from tests.thread_store.conftest import RunningThreadStore
from tests.thread_store.helpers import Ctx, assistant_message, new_thread, times, user_message


def _operator(org_id: str) -> Ctx:
    return Ctx(user_id=f"op-{uuid.uuid4().hex[:8]}", org_id=org_id, roles=("operator",))


async def _owned_thread(store: RunningThreadStore, owner: Ctx) -> str:
    thread = new_thread(title="needs a human")
    await store.store.save_thread(thread, owner)
    at = times(1)[0]
    await store.store.add_thread_item(thread.id, user_message(thread.id, "I want a person", at=at), owner)
    return thread.id


@pytest.fixture(params=["cached", "uncached"])
def either_store(
    request: pytest.FixtureRequest, thread_store: RunningThreadStore, uncached_thread_store: RunningThreadStore
) -> RunningThreadStore:
    """The thread store with its Redis cache, then without."""
    return thread_store if request.param == "cached" else uncached_thread_store


async def test_an_operator_of_the_threads_org_who_took_it_over_can_reply_and_the_owner_sees_the_reply(
    either_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store = either_store
    owner = Ctx(user_id=user_id, org_id=unique_org)
    thread_id = await _owned_thread(store, owner)
    # The owner's read fills the hot cache first: the reply must update the owner's cached copy.
    before = await store.store.load_thread_items(thread_id, None, 50, "asc", owner)
    assert len(before.data) == 1
    operator = _operator(unique_org)
    await store.store.set_handler(operator, thread_id, "human")

    reply = assistant_message(thread_id, "Hi, I'm Sam from support.", at=times(2)[1])
    await store.store.add_thread_item(thread_id, reply, operator)

    after = await store.store.load_thread_items(thread_id, None, 50, "asc", owner)
    assert [item.id for item in after.data] == [before.data[0].id, reply.id]
    assert after.data[1].type == "assistant_message"
    assert after.data[1].content[0].text == "Hi, I'm Sam from support."  # type: ignore[union-attr]
    loaded = await store.store.load_item(thread_id, reply.id, owner)
    assert loaded.id == reply.id


async def test_an_operator_of_another_org_cannot_reply(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    owner = Ctx(user_id=user_id, org_id=unique_org)
    thread_id = await _owned_thread(thread_store, owner)
    stranger = _operator(f"other-{unique_org}")

    with pytest.raises(NotFoundError):
        await thread_store.store.add_thread_item(
            thread_id, assistant_message(thread_id, "not mine", at=times(2)[1]), stranger
        )
    with pytest.raises(NotFoundError):
        await thread_store.store.save_item(
            thread_id, assistant_message(thread_id, "nor this", at=times(2)[1]), stranger
        )

    items = await thread_store.store.load_thread_items(thread_id, None, 50, "asc", owner)
    assert [item.type for item in items.data] == ["user_message"]


async def test_a_plain_user_of_the_same_org_cannot_write_into_anothers_thread(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    owner = Ctx(user_id=user_id, org_id=unique_org)
    thread_id = await _owned_thread(thread_store, owner)
    colleague = Ctx(user_id=f"colleague-{uuid.uuid4().hex[:8]}", org_id=unique_org)

    with pytest.raises(NotFoundError):
        await thread_store.store.add_thread_item(
            thread_id, assistant_message(thread_id, "sneaky", at=times(2)[1]), colleague
        )

    items = await thread_store.store.load_thread_items(thread_id, None, 50, "asc", owner)
    assert [item.type for item in items.data] == ["user_message"]


async def test_an_operator_cannot_write_a_user_message_into_a_users_thread_even_holding_it(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    owner = Ctx(user_id=user_id, org_id=unique_org)
    thread_id = await _owned_thread(thread_store, owner)
    operator = _operator(unique_org)
    await thread_store.store.set_handler(operator, thread_id, "human")

    with pytest.raises(PermissionDenied, match="only 'assistant_message' items"):
        await thread_store.store.add_thread_item(
            thread_id, user_message(thread_id, "words in the user's mouth", at=times(2)[1]), operator
        )

    items = await thread_store.store.load_thread_items(thread_id, None, 50, "asc", owner)
    assert len(items.data) == 1
