"""A user's conversation through the edge: streamed answers, a refresh, isolation, the offline task tools."""

from __future__ import annotations

import json

import httpx
from chatkit.types import ItemsListReq, Page, Thread, ThreadItem, ThreadsGetByIdReq, ThreadsListReq
from pydantic import TypeAdapter

from tests.e2e.conftest import (
    Stack,
    add_message_request,
    assistant_text,
    bearer,
    create_request,
    new_user,
    post_json,
    stream_events,
)

ITEMS: TypeAdapter[Page[ThreadItem]] = TypeAdapter(Page[ThreadItem])
THREADS: TypeAdapter[Page[Thread]] = TypeAdapter(Page[Thread])


async def test_a_user_gets_a_streamed_answer_and_a_refresh_loads_the_same_thread(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    events = await stream_events(http, token, create_request("hello there"))
    types = [e.type for e in events]
    assert types[0] == "thread.created"
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    assert "thread.item.updated" in types  # the answer streamed in pieces
    answer = assistant_text(events)
    assert "offline model" in answer  # it says so, once per thread

    events = await stream_events(http, token, add_message_request(thread_id, "what can you do?"))
    assert "offline model" not in assistant_text(events)

    # A page refresh: a new client lists the thread and loads the same items.
    async with httpx.AsyncClient(base_url=stack.edge, timeout=30) as fresh:
        listed = THREADS.validate_json((await post_json(fresh, token, ThreadsListReq(params={}))).content)  # type: ignore[arg-type]
        assert [t.id for t in listed.data] == [thread_id]
        reply = await post_json(fresh, token, ItemsListReq(params={"thread_id": thread_id, "order": "asc"}))  # type: ignore[arg-type]
        items = ITEMS.validate_json(reply.content).data
        assert [i.type for i in items][:2] == ["user_message", "assistant_message"]
        texts = [c.text for i in items if i.type == "assistant_message" for c in i.content]  # type: ignore[union-attr]
        assert texts[0] == answer
        full = Thread.model_validate_json(
            (await post_json(fresh, token, ThreadsGetByIdReq(params={"thread_id": thread_id}))).content  # type: ignore[arg-type]
        )
        assert [i.id for i in full.items.data] == [i.id for i in items]
        assert full.title  # titled after the first exchange


async def test_another_user_sees_none_of_it_and_gets_404_on_every_id(stack: Stack, http: httpx.AsyncClient) -> None:
    alice, bob = stack.token(new_user()), stack.token(new_user())
    session = (await http.post("/chatkit/sessions", json={}, headers=bearer(alice))).json()["session"]
    events = await stream_events(http, alice, create_request("alice's secret plan"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    item_id = next(e.item.id for e in events if e.type == "thread.item.done")  # type: ignore[union-attr]

    listed = THREADS.validate_json((await post_json(http, bob, ThreadsListReq(params={}))).content)  # type: ignore[arg-type]
    assert listed.data == []
    assert (await http.get("/api/conversations", headers=bearer(bob))).json()["data"] == []
    for request in (
        ThreadsGetByIdReq(params={"thread_id": thread_id}),  # type: ignore[arg-type]
        ItemsListReq(params={"thread_id": thread_id}),  # type: ignore[arg-type]
    ):
        reply = await post_json(http, bob, request)
        assert reply.status_code == 404, reply.text
    reply = await http.post("/chatkit", content=add_message_request(thread_id, "mine now"), headers=bearer(bob))
    assert reply.status_code == 404
    assert (await http.get(f"/api/conversations/{thread_id}/messages", headers=bearer(bob))).status_code == 404
    assert (await http.get(f"/chatkit/sessions/{session['id']}", headers=bearer(bob))).status_code == 404
    assert (await http.post(f"/chatkit/sessions/{session['id']}/cancel", headers=bearer(bob))).status_code == 404
    # Nothing of Bob's attempt reached Alice's thread.
    reply = await http.get(f"/api/conversations/{thread_id}/messages", headers=bearer(alice))
    data = reply.json()["data"]
    assert item_id in [i["id"] for i in data]
    assert not [i for i in data if i["type"] == "user_message" and "mine now" in str(i["content"])]


async def test_an_expired_token_gets_401_and_a_fresh_one_continues_the_thread(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    user = new_user()
    events = await stream_events(http, stack.token(user), create_request("first"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    expired = stack.token(user, ttl=-120)
    reply = await http.post("/chatkit", content=add_message_request(thread_id, "again"), headers=bearer(expired))
    assert reply.status_code == 401
    assert "sign in again" in reply.json()["error"]["message"]
    events = await stream_events(http, stack.token(user), add_message_request(thread_id, "again"))
    assert assistant_text(events)


async def test_offline_task_tools_show_their_item_and_keep_users_apart(stack: Stack, http: httpx.AsyncClient) -> None:
    alice, bob = stack.token(new_user()), stack.token(new_user())
    events = await stream_events(http, alice, create_request("add task buy milk"))
    tools = [e.item for e in events if e.type == "thread.item.done" and e.item.type == "task"]
    assert tools and tools[-1].task.status_indicator == "complete"  # type: ignore[union-attr]
    assert "add_task" in (tools[-1].task.title or "")  # type: ignore[union-attr]

    events = await stream_events(http, alice, create_request("list tasks"))
    assert "buy milk" in assistant_text(events)
    events = await stream_events(http, bob, create_request("list tasks"))
    assert "buy milk" not in assistant_text(events)


async def test_update_retry_sync_action_delete_and_the_requests_that_need_a_pending_item(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    events = await stream_events(http, token, create_request("first question"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    user_item = next(e.item.id for e in events if e.type == "thread.item.done" and e.item.type == "user_message")  # type: ignore[union-attr]

    update = {"type": "threads.update", "params": {"thread_id": thread_id, "title": "Renamed"}}
    assert (await http.post("/chatkit", json=update, headers=bearer(token))).json()["title"] == "Renamed"

    retry = {"type": "threads.retry_after_item", "params": {"thread_id": thread_id, "item_id": user_item}}
    events = await stream_events(http, token, json.dumps(retry).encode())
    assert assistant_text(events)
    reply = await post_json(http, token, ItemsListReq(params={"thread_id": thread_id, "order": "asc"}))  # type: ignore[arg-type]
    kinds = [i.type for i in ITEMS.validate_json(reply.content).data]
    assert kinds.count("user_message") == 1 and kinds.count("assistant_message") == 1  # the old answer was replaced

    sync = {
        "type": "threads.sync_custom_action",
        "params": {"thread_id": thread_id, "item_id": None, "action": {"type": "choose", "payload": {"plan": "pro"}}},
    }
    reply = await http.post("/chatkit", json=sync, headers=bearer(token))
    assert reply.status_code == 200 and reply.json() == {}

    tool_output = {"type": "threads.add_client_tool_output", "params": {"thread_id": thread_id, "result": {}}}
    reply = await http.post("/chatkit", json=tool_output, headers=bearer(token))
    assert reply.status_code == 400  # no client tool call is pending
    structured = {
        "type": "threads.add_structured_input",
        "params": {"thread_id": thread_id, "item_id": user_item, "input": {"status": "answered", "answers": {}}},
    }
    reply = await http.post("/chatkit", json=structured, headers=bearer(token))
    assert reply.status_code == 400 and "not a structured input" in reply.text

    delete = {"type": "threads.delete", "params": {"thread_id": thread_id}}
    assert (await http.post("/chatkit", json=delete, headers=bearer(token))).status_code == 200
    get = {"type": "threads.get_by_id", "params": {"thread_id": thread_id}}
    assert (await http.post("/chatkit", json=get, headers=bearer(token))).status_code == 404
