"""The change feed over gRPC, and export/import as JSON Lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from services.thread_store.domain import ChangeEvent
from services.thread_store.transfer import export_user, import_user
from switchboard.errors import PermissionDenied
from switchboard.principal import Principal
from tests.thread_store.conftest import RunningThreadStore
from tests.thread_store.helpers import Ctx, new_thread, times, user_message


async def _collect(stream: AsyncIterator[ChangeEvent], n: int) -> list[ChangeEvent]:
    events = []
    async for event in stream:
        events.append(event)
        if len(events) == n:
            break
    return events


async def _started(stream: AsyncIterator[ChangeEvent]) -> ChangeEvent:
    """Wait until the watch is live: every change after its first event reaches it."""
    first = await asyncio.wait_for(anext(stream), 5)
    assert first.type == "watch.started"
    assert first.id and not first.thread_id
    return first


async def test_watching_a_thread_delivers_its_changes_in_order(thread_store: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    store = thread_store.store
    thread = new_thread()
    await store.save_thread(thread, ctx)
    changes = store.watch(ctx, thread_id=thread.id)
    await _started(changes)
    watcher = asyncio.create_task(_collect(changes, 3))
    item = user_message(thread.id, "hello", at=times(1)[0])
    await store.add_thread_item(thread.id, item, ctx)
    await store.save_thread(thread.model_copy(update={"title": "named"}), ctx)
    await store.delete_thread_item(thread.id, item.id, ctx)
    events = await asyncio.wait_for(watcher, 5)
    assert [e.type for e in events] == ["item.added", "thread.updated", "item.deleted"]
    assert json.loads(events[0].json)["id"] == item.id
    revisions = [e.revision for e in events]
    assert revisions == sorted(revisions)


async def test_an_operator_watches_every_thread_of_its_org(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    operator = Ctx(user_id="op-" + user_id, org_id=unique_org, roles=("operator",))
    changes = thread_store.store.watch(operator, org=True)
    await _started(changes)
    watcher = asyncio.create_task(_collect(changes, 2))
    alice = Ctx(user_id=user_id, org_id=unique_org)
    thread = new_thread()
    await thread_store.store.save_thread(thread, alice)
    await thread_store.store.save_thread(new_thread(), Ctx(user_id=user_id, org_id="another-org"))
    await thread_store.store.add_thread_item(thread.id, user_message(thread.id, "hi", at=times(1)[0]), alice)
    events = await asyncio.wait_for(watcher, 5)
    assert [(e.type, e.thread_id) for e in events] == [("thread.created", thread.id), ("item.added", thread.id)]


async def test_watching_another_users_thread_or_an_org_without_the_role_is_refused(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    from chatkit.store import NotFoundError  # noqa: F401  (the client maps NOT_FOUND for Store calls only)

    from switchboard.errors import NotFound

    thread = new_thread()
    await thread_store.store.save_thread(thread, Ctx(user_id=user_id))
    with pytest.raises(NotFound):
        await _collect(thread_store.store.watch(Ctx(user_id="mallory"), thread_id=thread.id), 1)
    with pytest.raises(PermissionDenied):
        await _collect(thread_store.store.watch(Ctx(user_id=user_id, org_id=unique_org), org=True), 1)


async def test_export_then_import_moves_a_users_threads_intact(thread_store: RunningThreadStore, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    store = thread_store.store
    thread = new_thread(title="to move")
    await store.save_thread(thread, Ctx(user_id=user_id, scope="case-7"))
    items = [user_message(thread.id, f"m{i}", at=t) for i, t in enumerate(times(3))]
    for item in items:
        await store.add_thread_item(thread.id, item, ctx)
    lines = [line async for line in export_user(thread_store.service, Principal.create(user_id=user_id))]
    assert [json.loads(line)["kind"] for line in lines] == ["thread", "item", "item", "item"]

    newcomer = Principal.create(user_id="moved-" + user_id)
    await store.delete_thread(thread.id, ctx)  # the id is free again, as on another deployment
    counts = await import_user(thread_store.service, newcomer, lines)
    assert (counts.threads, counts.items) == (1, 3)
    moved = Ctx(user_id=newcomer.user_id)
    assert await store.load_thread(thread.id, moved) == thread
    assert (await store.load_thread_items(thread.id, None, 10, "asc", moved)).data == items
    scoped = await store.load_threads_page(limit=5, after=None, order="desc", context=moved, scope="case-7")
    assert [t.id for t in scoped.data] == [thread.id]


async def test_import_names_the_line_that_is_malformed(thread_store: RunningThreadStore, user_id: str) -> None:
    from switchboard.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="line 2"):
        await import_user(
            thread_store.service,
            Principal.create(user_id=user_id),
            ['{"kind": "thread", "thread": {"id": "t1", "created_at": "2026-01-01T00:00:00Z"}}', "{oops"],
        )
