"""Isolation: another user's thread is NOT_FOUND; operators read their own org only.

Through the ChatKit ``Store`` interface another user's thread reads as the SDK's
reference store reads it: ``load_thread`` is ``NotFoundError``, its items are an
empty page, a delete does nothing.
"""

from __future__ import annotations

import pytest
from chatkit.store import NotFoundError

from switchboard.errors import PermissionDenied
from tests.thread_store.conftest import RunningThreadStore
from tests.thread_store.helpers import Ctx, new_thread, times, user_message


@pytest.fixture
async def alices_thread(thread_store: RunningThreadStore, user_id: str, unique_org: str) -> tuple[Ctx, str]:
    alice = Ctx(user_id=user_id, org_id=unique_org)
    thread = new_thread(title="alice's plans")
    await thread_store.store.save_thread(thread, alice)
    await thread_store.store.add_thread_item(thread.id, user_message(thread.id, "secret", at=times(1)[0]), alice)
    return alice, thread.id


async def test_another_users_thread_is_not_found(
    thread_store: RunningThreadStore, alices_thread: tuple[Ctx, str]
) -> None:
    alice, thread_id = alices_thread
    bob = Ctx(user_id="bob-" + alice.user_id, org_id=alice.org_id)
    store = thread_store.store
    with pytest.raises(NotFoundError):
        await store.load_thread(thread_id, bob)
    assert (await store.load_thread_items(thread_id, None, 10, "asc", bob)).data == []
    with pytest.raises(NotFoundError, match=f"Thread {thread_id} not found"):
        await store.load_thread_items(thread_id, None, 10, "asc", bob, strict=True)
    page = await store.load_threads(50, None, "desc", bob)
    assert thread_id not in [t.id for t in page.data]


async def test_another_user_cannot_write_to_or_delete_a_thread(
    thread_store: RunningThreadStore, alices_thread: tuple[Ctx, str]
) -> None:
    alice, thread_id = alices_thread
    bob = Ctx(user_id="bob-" + alice.user_id)
    store = thread_store.store
    with pytest.raises(NotFoundError):
        await store.add_thread_item(thread_id, user_message(thread_id, "injected", at=times(2)[1]), bob)
    await store.delete_thread(thread_id, bob)  # no error, as the reference store: and nothing deleted
    hijack = (await store.load_thread(thread_id, alice)).model_copy(update={"title": "bob was here"})
    with pytest.raises(NotFoundError):
        await store.save_thread(hijack, bob)
    assert (await store.load_thread(thread_id, alice)).title == "alice's plans"
    page = await store.load_thread_items(thread_id, None, 10, "asc", alice)
    assert len(page.data) == 1


async def test_an_operator_reads_threads_of_its_own_org(
    thread_store: RunningThreadStore, alices_thread: tuple[Ctx, str]
) -> None:
    alice, thread_id = alices_thread
    operator = Ctx(user_id="op-" + alice.user_id, org_id=alice.org_id, roles=("operator",))
    store = thread_store.store
    assert (await store.load_thread(thread_id, operator)).title == "alice's plans"
    page = await store.load_thread_items(thread_id, None, 10, "asc", operator)
    assert [i.content[0].text for i in page.data] == ["secret"]  # type: ignore[union-attr]
    listed = {t.thread.id: t for t in (await store.load_org_threads(operator)).data}
    assert listed[thread_id].thread.title == "alice's plans"
    assert (listed[thread_id].user_id, listed[thread_id].org_id) == (alice.user_id, alice.org_id)


async def test_the_org_listing_pages_from_the_most_recently_active_thread(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    store = thread_store.store
    owner = Ctx(user_id=user_id, org_id=unique_org)
    operator = Ctx(user_id="op-" + user_id, org_id=unique_org, roles=("operator",))
    ids = []
    for n in range(3):
        thread = new_thread(title=f"thread {n}")
        await store.save_thread(thread, owner)
        ids.append(thread.id)
    await store.add_thread_item(ids[0], user_message(ids[0], "the oldest is active again", at=times(1)[0]), owner)
    first = await store.load_org_threads(operator, limit=2)
    assert [t.thread.id for t in first.data] == [ids[0], ids[2]] and first.has_more and first.after == ids[2]
    rest = await store.load_org_threads(operator, limit=2, after=first.after)
    assert [t.thread.id for t in rest.data] == [ids[1]] and not rest.has_more and rest.after is None
    assert first.data[0].updated_at > first.data[1].updated_at > rest.data[0].updated_at


async def test_an_operator_of_another_org_sees_nothing(
    thread_store: RunningThreadStore, alices_thread: tuple[Ctx, str]
) -> None:
    alice, thread_id = alices_thread
    outsider = Ctx(user_id="op2-" + alice.user_id, org_id="other-org", roles=("operator",))
    with pytest.raises(NotFoundError):
        await thread_store.store.load_thread(thread_id, outsider)
    assert (await thread_store.store.load_thread_items(thread_id, None, 10, "asc", outsider)).data == []


async def test_an_operator_may_read_but_not_write_a_users_thread(
    thread_store: RunningThreadStore, alices_thread: tuple[Ctx, str]
) -> None:
    alice, thread_id = alices_thread
    operator = Ctx(user_id="op-" + alice.user_id, org_id=alice.org_id, roles=("operator",))
    # The operator sees the thread, so the refusal names the rule (only a holder's replies: test_handoff.py).
    with pytest.raises(PermissionDenied):
        await thread_store.store.add_thread_item(thread_id, user_message(thread_id, "x", at=times(1)[0]), operator)
    await thread_store.store.delete_thread(thread_id, operator)  # no error, and nothing deleted
    assert (await thread_store.store.load_thread(thread_id, alice)).title == "alice's plans"


async def test_a_user_without_the_operator_role_cannot_list_the_org(
    thread_store: RunningThreadStore, alices_thread: tuple[Ctx, str]
) -> None:
    alice, _thread_id = alices_thread
    with pytest.raises(PermissionDenied):
        await thread_store.store.load_org_threads(Ctx(user_id="x", org_id=alice.org_id))
