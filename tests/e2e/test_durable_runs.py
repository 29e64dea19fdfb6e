"""Durable runs through the edge, with the stack as processes: a disconnect loses nothing, any
edge replica joins a run, cancel by thread or session ends every open stream, and each
double-texting policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import (
    LONG,
    EdgeReplica,
    SseEvent,
    Stack,
    add_message_request,
    answering,
    bearer,
    drain,
    new_thread,
    new_user,
    read_sse,
    read_until_text,
    service_env,
    start_edge,
    start_service,
    stream_events,
    thread_messages,
    two_open_streams,
)


async def _wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


async def test_a_client_that_disconnects_mid_answer_gets_the_whole_answer_saved(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    thread_id = await new_thread(http, token)
    async with http.stream(
        "POST", "/chatkit", content=add_message_request(thread_id, "count to 600"), headers=bearer(token)
    ) as reply:
        await read_until_text(read_sse(reply), "Counting to 600: 1 2 3")  # the answer is streaming: go away

    async def finished() -> bool:
        texts = await thread_messages(http, token, thread_id)
        return texts[-1][0] == "assistant_message" and texts[-1][1].endswith("600.")

    await _wait_for(finished, 20)
    texts = await thread_messages(http, token, thread_id)
    assert [kind for kind, _ in texts] == ["user_message", "assistant_message", "user_message", "assistant_message"]
    assert texts[-1][1] == "Counting to 600: " + " ".join(str(i) for i in range(1, 601)) + "."
    runs = (await http.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()
    assert [r["status"] for r in runs["data"]] == ["completed", "completed"]


async def test_a_join_on_a_second_edge_replays_what_was_missed_and_follows_to_the_end(
    stack: Stack, http: httpx.AsyncClient, http_b: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    thread_id = await new_thread(http, token)
    async with http.stream(
        "POST", "/chatkit", content=add_message_request(thread_id, "count to 900"), headers=bearer(token)
    ) as reply:
        seen = await read_until_text(read_sse(reply), "Counting to 900: 1 2 3")
    last_id = [s.id for s in seen if s.id][-1]
    run_id, _, last_seq = last_id.rpartition(":")
    headers = {**bearer(token), "Last-Event-ID": last_id}
    async with http_b.stream("GET", f"/chatkit/threads/{thread_id}/stream", headers=headers) as joined:
        assert joined.status_code == 200 and joined.headers["content-type"].startswith("text/event-stream")
        replay = await drain(read_sse(joined))
    ids = [s.id for s in replay]
    assert all(i is not None and i.startswith(run_id + ":") for i in ids)
    seqs = [int(i.rpartition(":")[2]) for i in ids if i]
    assert seqs == list(range(int(last_seq) + 1, int(last_seq) + 1 + len(seqs)))  # nothing missed, nothing twice
    done = [s.event for s in replay if s.event.type == "thread.item.done" and s.event.item.type == "assistant_message"]  # type: ignore[union-attr]
    assert done and done[-1].item.content[0].text.endswith("900.")  # type: ignore[union-attr]
    # From the start (no Last-Event-ID) and after the end: nothing is answering now.
    assert (await http_b.get(f"/chatkit/threads/{thread_id}/stream", headers=bearer(token))).status_code == 204
    intruder = bearer(stack.token(new_user()))
    assert (await http_b.get(f"/chatkit/threads/{thread_id}/stream", headers=intruder)).status_code == 404
    bad = {**bearer(token), "Last-Event-ID": "nonsense"}
    assert (await http_b.get(f"/chatkit/threads/{thread_id}/stream", headers=bad)).status_code == 400


async def _cancel_and_time(cancel: object, tasks: tuple[asyncio.Task[list[SseEvent]], ...]) -> float:
    began = time.monotonic()
    await cancel()  # type: ignore[operator]
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    return time.monotonic() - began


@pytest.mark.parametrize("by", ["thread", "session", "operator"])
async def test_cancel_by_thread_or_session_ends_two_open_streams_within_a_second_keeping_the_partial(
    stack: Stack, http: httpx.AsyncClient, http_b: httpx.AsyncClient, by: str
) -> None:
    user = new_user()
    token = stack.token(user)
    thread_id = await new_thread(http, token)
    session_id = (await http.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"][0][
        "session_id"
    ]
    assert session_id
    tasks = await two_open_streams(http, http_b, token, thread_id)

    async def cancel() -> None:
        if by == "thread":
            reply = await http_b.post(f"/chatkit/threads/{thread_id}/cancel", headers=bearer(token))
            assert reply.status_code == 200 and len(reply.json()["cancelled"]) == 1
        elif by == "session":
            reply = await http_b.post(f"/chatkit/sessions/{session_id}/cancel", headers=bearer(token))
            assert reply.status_code == 200 and reply.json()["status"] == "cancelled"
        else:  # an operator of the user's org cancels the user's session: its answers stop too
            stranger = bearer(stack.token("op-elsewhere", org_id="other-org", operator=True))
            assert (await http_b.post(f"/chatkit/sessions/{session_id}/cancel", headers=stranger)).status_code == 404
            assert not any(task.done() for task in tasks)
            operator = bearer(stack.token("op-e2e", operator=True))
            reply = await http_b.post(f"/chatkit/sessions/{session_id}/cancel", headers=operator)
            assert reply.status_code == 200 and reply.json()["status"] == "cancelled"

    elapsed = await _cancel_and_time(cancel, tasks)
    own, joined = tasks[0].result(), tasks[1].result()
    assert elapsed < 1.0, f"streams ended {elapsed:.2f} s after the cancel"
    texts = await thread_messages(http, token, thread_id)
    partial = texts[-1][1]
    assert (
        texts[-1][0] == "assistant_message" and "Counting to 3000: 1 2 3" in partial and not partial.endswith("3000.")
    )
    for events in (own, joined):
        done = [
            s.event for s in events if s.event.type == "thread.item.done" and s.event.item.type == "assistant_message"
        ]  # type: ignore[union-attr]
        assert done[-1].item.content[0].text == partial  # type: ignore[union-attr]
        assert not [s for s in events if s.event.type == "error"]
    runs = (await http.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
    assert runs[0]["status"] == "cancelled"
    if by == "thread":
        # The next answer does not continue the cancelled one, and the thread is free at once.
        answer = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
        assert [e for e in answer if e.type == "thread.item.done" and e.item.type == "assistant_message"]  # type: ignore[union-attr]
    other = bearer(stack.token(new_user()))
    assert (await http.post(f"/chatkit/threads/{thread_id}/cancel", headers=other)).status_code == 404


@dataclass
class PolicyEdge:
    """An agent runner with a double-texting policy, and an edge in front of it."""

    runner: object
    edge: EdgeReplica


@pytest.fixture(scope="module")
def policy_edges(stack: Stack) -> Iterator[dict[str, EdgeReplica]]:
    """For ``reject`` and ``interrupt``: a runner process with that policy and an edge of its own."""
    started: dict[str, EdgeReplica] = {}
    runners = []
    try:
        for policy in ("reject", "interrupt"):
            port = free_port()
            runners.append(start_service("agent-runner", port, service_env(stack, SWITCHBOARD_DOUBLE_TEXT=policy)))
            started[policy] = start_edge(stack, free_port(), SWITCHBOARD_AGENT_RUNNER=f"127.0.0.1:{port}")
        yield started
    finally:
        for replica in started.values():
            replica.process.terminate()
            replica.process.wait(timeout=30)
        for runner in runners:
            runner.terminate()
            runner.wait(timeout=30)


async def _second_message_while_answering(
    client: httpx.AsyncClient, token: str, thread_id: str, second: str
) -> tuple[list[SseEvent], list[SseEvent]]:
    task = await answering(client, token, thread_id)
    async with client.stream(
        "POST", "/chatkit", content=add_message_request(thread_id, second), headers=bearer(token)
    ) as reply:
        assert reply.status_code == 200
        second_events = await asyncio.wait_for(drain(read_sse(reply)), 30)
    if not task.done():
        await client.post(f"/chatkit/threads/{thread_id}/cancel", headers=bearer(token))
    return await asyncio.wait_for(task, 30), second_events


async def test_enqueue_answers_a_message_sent_while_answering_right_after_in_order(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    thread_id = await new_thread(http, token)

    task = await answering(http, token, thread_id, "count to 700", until="Counting to 700: 1 2 3")
    second = await asyncio.wait_for(stream_events(http, token, add_message_request(thread_id, "list tasks")), 30)
    await task
    assert [e.type for e in second][:3] == ["thread.item.done", "stream_options", "progress_update"]
    assert [e for e in second if e.type == "thread.item.done" and e.item.type == "assistant_message"]  # type: ignore[union-attr]
    texts = await thread_messages(http, token, thread_id)
    assert [t for _, t in texts][2:] == [
        "count to 700",
        "Counting to 700: " + " ".join(str(i) for i in range(1, 701)) + ".",
        "list tasks",
        texts[-1][1],
    ]
    assert texts[-1][0] == "assistant_message" and texts[-1][1]


async def test_reject_refuses_a_message_sent_while_answering_and_does_not_keep_it(
    stack: Stack, policy_edges: dict[str, EdgeReplica]
) -> None:
    async with httpx.AsyncClient(base_url=policy_edges["reject"].url, timeout=30) as client:
        token = stack.token(new_user())
        thread_id = await new_thread(client, token)
        _first, second = await _second_message_while_answering(client, token, thread_id, "are you there?")
        errors = [s.event for s in second if s.event.type == "error"]
        assert len(second) == 1 and errors and "was not sent" in (errors[0].message or "")  # type: ignore[union-attr]
        texts = await thread_messages(client, token, thread_id)
        assert "are you there?" not in [t for _, t in texts]


async def test_interrupt_stops_the_running_answer_and_answers_the_new_message(
    stack: Stack, policy_edges: dict[str, EdgeReplica]
) -> None:
    async with httpx.AsyncClient(base_url=policy_edges["interrupt"].url, timeout=30) as client:
        token = stack.token(new_user())
        thread_id = await new_thread(client, token)
        _first, second = await _second_message_while_answering(client, token, thread_id, "list tasks")
        assert [s for s in second if s.event.type == "thread.item.done" and s.event.item.type == "assistant_message"]  # type: ignore[union-attr]
        texts = await thread_messages(client, token, thread_id)
        assert [t for _, t in texts][2] == LONG
        assert "Counting to 3000: 1 2 3" in texts[3][1] and not texts[3][1].endswith("3000.")  # kept, cut short
        assert texts[4] == ("user_message", "list tasks") and texts[5][0] == "assistant_message"
        runs = (await client.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
        assert [r["status"] for r in runs] == ["completed", "cancelled", "completed"]


async def test_with_on_disconnect_cancel_a_client_going_away_cancels_its_answer_and_keeps_the_part(
    stack: Stack,
) -> None:
    replica = start_edge(stack, free_port(), SWITCHBOARD_ON_DISCONNECT="cancel")
    try:
        async with httpx.AsyncClient(base_url=replica.url, timeout=30) as client:
            token = stack.token(new_user())
            thread_id = await new_thread(client, token)
            async with client.stream(
                "POST", "/chatkit", content=add_message_request(thread_id, LONG), headers=bearer(token)
            ) as reply:
                await read_until_text(read_sse(reply), "Counting to 3000: 1 2 3")

            async def cancelled() -> bool:
                runs = (await client.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
                return bool(runs[0]["status"] == "cancelled")

            await _wait_for(cancelled, 10)
            texts = await thread_messages(client, token, thread_id)
            assert texts[-1][0] == "assistant_message" and not texts[-1][1].endswith("3000.")
    finally:
        replica.process.terminate()
        replica.process.wait(timeout=30)
