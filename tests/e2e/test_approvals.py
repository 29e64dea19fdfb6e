"""Action cards through the edge, as a ChatKit client clicks them: a delete waits for
approval; Approve deletes and the answer streams into the click's stream; Reject keeps
the task; a second click and another user's click change nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import (
    EdgeReplica,
    Stack,
    add_message_request,
    assistant_text,
    bearer,
    create_request,
    new_user,
    read_sse,
    runner_behind_edge,
    stream_events,
    thread_messages,
)


async def _add_task(http: httpx.AsyncClient, token: str, title: str) -> tuple[str, str]:
    events = await stream_events(http, token, create_request(f"add {title}"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    match = re.search(r"id `(task_[0-9a-f]+)`", assistant_text(events))
    assert match, assistant_text(events)
    return thread_id, match.group(1)


async def _click(http: httpx.AsyncClient, token: str, thread_id: str, card_id: str, action: str) -> httpx.Response:
    body = {
        "type": "threads.custom_action",
        "params": {"thread_id": thread_id, "item_id": card_id, "action": {"type": action, "payload": {}}},
    }
    return await http.post("/chatkit", json=body, headers=bearer(token))


async def _events(reply: httpx.Response) -> list[object]:
    return [sse.event async for sse in read_sse(reply)]


async def test_a_delete_shows_a_card_and_approve_deletes_and_streams_the_answer(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    thread_id, task_id = await _add_task(http, token, "water the plants")
    events = await stream_events(http, token, add_message_request(thread_id, f"delete task {task_id}"))
    cards = [e.item for e in events if e.type == "thread.item.done" and e.item.type == "widget"]  # type: ignore[union-attr]
    assert len(cards) == 1 and task_id in cards[0].widget.children[0].value  # type: ignore[union-attr]
    listed = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert "water the plants" in assistant_text(listed)  # nothing deleted; the new message closed the card

    events = await stream_events(http, token, add_message_request(thread_id, f"delete task {task_id}"))
    card = next(e.item for e in events if e.type == "thread.item.done" and e.item.type == "widget")  # type: ignore[union-attr]
    intruder = stack.token(new_user())
    assert (await _click(http, intruder, thread_id, card.id, "switchboard.approval.approve")).status_code == 404

    async with http.stream(
        "POST",
        "/chatkit",
        json={
            "type": "threads.custom_action",
            "params": {
                "thread_id": thread_id,
                "item_id": card.id,
                "action": {"type": "switchboard.approval.approve", "payload": {}},
            },
        },
        headers=bearer(token),
    ) as reply:
        assert reply.status_code == 200
        answered = await _events(reply)
    replaced = [e.item for e in answered if e.type == "thread.item.replaced"]  # type: ignore[attr-defined]
    assert replaced and replaced[0].id == card.id and replaced[0].widget.confirm is None
    assert f"Deleted task `{task_id}`" in assistant_text(answered)  # type: ignore[arg-type]

    again = await _click(http, token, thread_id, card.id, "switchboard.approval.approve")
    assert again.status_code == 200 and "data:" not in again.text  # a second click does nothing
    listed = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert "no open tasks" in assistant_text(listed)


async def test_reject_keeps_the_task_and_the_agent_says_it_was_not_done(stack: Stack, http: httpx.AsyncClient) -> None:
    token = stack.token(new_user())
    thread_id, task_id = await _add_task(http, token, "call the bank")
    events = await stream_events(http, token, add_message_request(thread_id, f"delete task {task_id}"))
    card = next(e.item for e in events if e.type == "thread.item.done" and e.item.type == "widget")  # type: ignore[union-attr]
    reply = await _click(http, token, thread_id, card.id, "switchboard.approval.reject")
    assert reply.status_code == 200
    assert "Not done" in reply.text and "rejected" in reply.text
    forged = await _click(http, token, thread_id, "msg_forged01", "switchboard.approval.approve")
    assert forged.status_code == 200 and "no pending approval" in forged.text
    listed = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert "call the bank" in assistant_text(listed)


async def test_a_choice_question_is_answered_in_the_chat_and_the_agent_goes_on(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    events = await stream_events(http, token, create_request("choose between red, green or blue"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    question = next(e.item for e in events if e.type == "thread.item.done" and e.item.type == "structured_input")  # type: ignore[union-attr]
    choice = question.inputs[0]  # type: ignore[union-attr]
    assert [o.value for o in choice.options] == ["red", "green", "blue"]
    body = {
        "type": "threads.add_structured_input",
        "params": {
            "thread_id": thread_id,
            "item_id": question.id,
            "input": {"status": "answered", "answers": {choice.id: {"values": ["green"]}}},
        },
    }
    async with http.stream("POST", "/chatkit", json=body, headers=bearer(token)) as reply:
        assert reply.status_code == 200
        answered = await _events(reply)
    replaced = [e.item for e in answered if e.type == "thread.item.replaced"]  # type: ignore[attr-defined]
    assert replaced and replaced[0].status == "answered"
    assert "You chose “green”" in assistant_text(answered)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def short_lived_cards(stack: Stack) -> Iterator[EdgeReplica]:
    """An agent runner whose cards expire after a second, and an edge in front of it."""
    with runner_behind_edge(stack, SWITCHBOARD_APPROVAL_TTL_SECONDS="1") as edge:
        yield edge


async def test_a_card_nobody_decides_expires_deletes_nothing_and_the_thread_says_so(
    stack: Stack, short_lived_cards: EdgeReplica
) -> None:
    async with httpx.AsyncClient(base_url=short_lived_cards.url, timeout=30) as http:
        token = stack.token(new_user())
        thread_id, task_id = await _add_task(http, token, "return the books")
        events = await stream_events(http, token, add_message_request(thread_id, f"delete task {task_id}"))
        card = next(e.item for e in events if e.type == "thread.item.done" and e.item.type == "widget")  # type: ignore[union-attr]
        for _ in range(100):  # expiry is swept with the heartbeat, every 2 s
            runs = (await http.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
            if runs[0]["status"] != "waiting_approval":
                break
            await asyncio.sleep(0.1)
        assert runs[0]["status"] == "cancelled"
        for _ in range(50):  # the sweep writes its note just after it ends the run
            messages = await thread_messages(http, token, thread_id)
            if "expired" in messages[-1][1]:
                break
            await asyncio.sleep(0.1)
        assert "expired" in messages[-1][1] and messages[-1][0] == "assistant_message"
        late = await _click(http, token, thread_id, card.id, "switchboard.approval.approve")
        assert late.status_code == 200 and "data:" not in late.text  # decided (expired): nothing happens
        listed = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
        assert "return the books" in assistant_text(listed)
