"""Cancellation from a second client and replica, and the task MCP server seen by a client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp import Client

from services.agent_runner.tasks import TASK_USER, TaskRepository, build_task_server
from switchboard.errors import NotFound
from tests.agent_runner.conftest import Ctx, RunningRunner, new_thread, start_runner, user_message


async def _first_delta(stream: object) -> list[object]:
    seen = []
    async for event in stream:  # type: ignore[attr-defined]
        seen.append(event)
        if event.type == "thread.item.updated" and event.update.type.endswith("text_delta"):
            return seen
    return seen


async def test_a_second_client_on_another_replica_cancels_a_run_and_the_stream_ends_cleanly(
    runner: RunningRunner, database_url: str, redis_url: str, user_id: str
) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline(delay=0.05)
    other = await start_runner(database_url, redis_url, runner.thread_store)
    try:
        stream = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "say something long"))
        run_id = await stream.started()
        events = await _first_delta(stream)
        await other.client.cancel(ctx, run_id)  # lands on the replica that does not hold the run
        events += [e async for e in stream]
    finally:
        runner.models.use_offline()
        await other.client.close()
        await other.server.stop(grace=0)
    assert not [e for e in events if getattr(e, "type", "") == "error"]
    done = [e for e in events if e.type == "thread.item.done" and e.item.type == "assistant_message"]
    partial = done[0].item.content[0].text
    assert partial and "Here is what I can do offline" not in partial  # cut short, kept
    stored = await runner.thread_store.store.load_item(thread.id, done[0].item.id, ctx)
    assert stored.content[0].text == partial  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await runner.client.cancel(ctx, run_id)  # it has ended


async def test_another_users_run_cannot_be_cancelled(runner: RunningRunner, user_id: str) -> None:
    ctx = Ctx(user_id=user_id)
    thread = await new_thread(runner, ctx)
    runner.models.use_offline(delay=0.05)
    try:
        stream = runner.client.run(ctx, thread_id=thread.id, user_message=user_message(thread.id, "hello"))
        run_id = await stream.started()
        with pytest.raises(NotFound):
            await runner.client.cancel(Ctx(user_id=f"{user_id}-intruder"), run_id)
        await runner.client.cancel(ctx, run_id)
        _ = [e async for e in stream]
    finally:
        runner.models.use_offline()


async def test_the_task_server_serves_one_users_tasks_to_an_mcp_client(runner: RunningRunner, user_id: str) -> None:
    repository: TaskRepository = runner.service.catalog._tasks
    async with (
        Client(build_task_server(repository, user_id)) as mine,
        Client(build_task_server(repository, f"{user_id}-other")) as theirs,
    ):
        names = {t.name for t in (await mine.list_tools()).tools}
        assert names == {"add_task", "list_tasks", "complete_task", "update_task", "delete_task"}
        added = (await mine.call_tool("add_task", {"title": "  water   plants "})).structured_content
        assert added is not None and added["title"] == "water plants"
        task_id = added["id"]
        stolen = await theirs.call_tool("complete_task", {"task_id": task_id})
        assert stolen.is_error and "no task" in stolen.content[0].text  # type: ignore[union-attr]
        assert (await theirs.call_tool("list_tasks", {})).structured_content == {"tasks": []}
        renamed = (
            await mine.call_tool("update_task", {"task_id": task_id, "title": "water the plants"})
        ).structured_content
        assert renamed is not None and renamed["title"] == "water the plants"
        completed = (await mine.call_tool("complete_task", {"task_id": task_id})).structured_content
        assert completed is not None and completed["done"] is True
        assert (await mine.call_tool("list_tasks", {})).structured_content == {"tasks": []}
        everything = (await mine.call_tool("list_tasks", {"include_done": True})).structured_content
        assert everything is not None and [t["id"] for t in everything["tasks"]] == [task_id]
        await mine.call_tool("delete_task", {"task_id": task_id})
        gone = await mine.call_tool("delete_task", {"task_id": task_id})
        assert gone.is_error
        empty = await mine.call_tool("add_task", {"title": "   "})
        assert empty.is_error and "non-empty title" in empty.content[0].text  # type: ignore[union-attr]
    await asyncio.sleep(0)


async def test_one_shared_task_server_serves_each_session_the_user_bound_when_it_opened(
    runner: RunningRunner, user_id: str
) -> None:
    repository: TaskRepository = runner.service.catalog._tasks
    shared = build_task_server(repository)  # as the agent runner builds it: once

    async def session_of(user: str | None) -> Any:
        if user is not None:
            TASK_USER.set(user)
        async with Client(shared) as client:
            await client.call_tool("add_task", {"title": f"task of {user}"})
            return await client.call_tool("list_tasks", {})

    # Each in its own task, as each run is: the binding never leaks between them.
    mine, theirs, nobody = await asyncio.gather(
        asyncio.create_task(session_of(user_id)),
        asyncio.create_task(session_of(f"{user_id}-other")),
        asyncio.create_task(session_of(None)),
    )
    assert [t["title"] for t in mine.structured_content["tasks"]] == [f"task of {user_id}"]
    assert [t["title"] for t in theirs.structured_content["tasks"]] == [f"task of {user_id}-other"]
    assert nobody.is_error and "not bound to a user" in nobody.content[0].text
