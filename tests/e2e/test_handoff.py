"""Human hand-off through the edge, as a ChatKit client and as operators over HTTP: the user
escalates; the agent goes silent; an operator claims and replies into the user's OPEN stream;
another operator is refused; hand-back gives the agent the summary; nobody claiming in time
returns the thread to the agent; an operator takes over a conversation that never escalated;
a thread whose session was cancelled escalates again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadStreamEvent

from switchboard.api.v1 import thread_store_pb2 as tpb
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
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


@dataclass
class OpenStream:
    """A ChatKit stream read in the background: each event with the monotonic time it arrived."""

    events: list[tuple[float, ThreadStreamEvent]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def thread_id(self) -> str:
        first = self.events[0][1]
        assert first.type == "thread.created", first
        return first.thread.id

    def items(self, kind: str) -> list[object]:
        return [e.item for _, e in self.events if e.type == "thread.item.done" and e.item.type == kind]  # type: ignore[union-attr]

    def text(self) -> str:
        return assistant_text([e for _, e in self.events])

    async def wait_for(self, predicate: object, timeout: float = 10.0) -> tuple[float, ThreadStreamEvent]:
        """The first event matching ``predicate`` (a callable), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for at, event in self.events:
                if predicate(event):  # type: ignore[operator]
                    return at, event
            if self.ended.is_set():
                raise AssertionError(f"the stream ended without it: {[e.type for _, e in self.events]}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not within {timeout} s: {[e.type for _, e in self.events]}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout=left)


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, token: str, body: bytes | None, *, join: str | None = None
) -> AsyncIterator[OpenStream]:
    """POST a streaming ChatKit request (or join thread ``join``'s active run) and read it in the
    background until the block ends."""
    stream = OpenStream()
    method, path = ("GET", f"/chatkit/threads/{join}/stream") if join else ("POST", "/chatkit")

    async def read() -> None:
        try:
            async with http.stream(method, path, content=body, headers=bearer(token)) as reply:
                assert reply.status_code == 200, (await reply.aread()).decode()
                async for sse in read_sse(reply):
                    stream.events.append((time.monotonic(), sse.event))
                    stream.arrived.set()
        finally:
            stream.ended.set()
            stream.arrived.set()

    task = asyncio.create_task(read())
    try:
        yield stream
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def post(http: httpx.AsyncClient, token: str, path: str, body: object = None) -> httpx.Response:
    """POST to the edge as the token's holder (a JSON body when given)."""
    return await http.post(path, json=body, headers=bearer(token))


def is_notice(title: str) -> object:
    return lambda e: e.type == "thread.item.done" and e.item.type == "task" and title in (e.item.task.title or "")


def is_text(text: str) -> object:
    return lambda e: (
        e.type == "thread.item.done"
        and e.item.type == "assistant_message"
        and any(text in c.text for c in e.item.content)
    )


async def escalation_of(http: httpx.AsyncClient, operator: str, thread_id: str, status: str) -> dict[str, object]:
    reply = await http.get(
        "/api/operator/escalations", params={"status": status, "limit": 200}, headers=bearer(operator)
    )
    assert reply.status_code == 200, reply.text
    found = [e for e in reply.json()["data"] if e["thread_id"] == thread_id]
    assert len(found) == 1, reply.json()
    return found[0]


def operator_save_item(stack: Stack, operator_id: str, thread_id: str, item: AssistantMessageItem) -> grpc.RpcError:
    """An operator's raw SaveItem through thread_store's gRPC API; the error it gets."""
    token = stack.token(operator_id, operator=True)
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports['thread_store']}") as channel:
        stub = ThreadStoreStub(channel)
        request = tpb.WriteItemRequest(thread_id=thread_id, item_json=item.model_dump_json().encode())
        request.principal.user_id = operator_id
        request.principal.org_id = "e2e"
        request.principal.roles.append("operator")
        with pytest.raises(grpc.RpcError) as refused:
            # With the operator's own token: an operator is an end user to thread_store.
            stub.SaveItem(request, timeout=10, metadata=(("authorization", f"Bearer {token}"),))
        return refused.value


async def test_escalate_claim_reply_live_refuse_others_and_hand_back(stack: Stack, http: httpx.AsyncClient) -> None:
    user = new_user()
    token = stack.token(user)
    first_operator, second_operator = f"op-{new_user()}", f"op-{new_user()}"
    op1 = stack.token(first_operator, operator=True)
    op2 = stack.token(second_operator, operator=True)

    async with open_stream(http, token, create_request("I want to talk to a human please")) as escalated:
        await escalated.wait_for(is_notice("A person from our team will reply here"))
        await escalated.wait_for(is_text("person from our team"))  # the agent says what happens next
        thread_id = escalated.thread_id
        assert not escalated.ended.is_set()  # the stream stays open for the person
        escalation = await escalation_of(http, op1, thread_id, "open")

        claimed = await post(http, op1, f"/api/operator/escalations/{escalation['id']}/claim")
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["handled_by"] == "human" and claimed.json()["operator_id"] == first_operator
        await escalated.wait_for(is_notice(f"You are now talking with {first_operator}"))

        sent_at = time.monotonic()
        reply = await http.post(
            f"/api/operator/threads/{thread_id}/messages",
            json={"text": "Hi, Dana here. Let me look."},
            headers=bearer(op1),
        )
        assert reply.status_code == 201, reply.text
        received_at, _ = await escalated.wait_for(is_text("Dana here"), timeout=5)
        assert received_at - sent_at < 1.0, f"the reply reached the open stream after {received_at - sent_at:.2f} s"

        refused = await post(http, op2, f"/api/operator/threads/{thread_id}/messages", {"text": "me too"})
        assert refused.status_code == 403, refused.text
        taken = await post(http, op2, f"/api/operator/threads/{thread_id}/takeover")
        assert taken.status_code == 409, taken.text
        user_messages = [i for i in escalated.items("user_message")]
        forged = AssistantMessageItem(
            id=user_messages[0].id,  # type: ignore[attr-defined]
            thread_id=thread_id,
            created_at=user_messages[0].created_at,  # type: ignore[attr-defined]
            content=[AssistantMessageContent(text="overwritten")],
        )
        error = operator_save_item(stack, first_operator, thread_id, forged)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error

    # While a person handles it, the agent is silent: the next message's stream carries the person's reply.
    async with open_stream(http, token, add_message_request(thread_id, "Are you still there?")) as waiting:
        await waiting.wait_for(lambda e: e.type == "thread.item.done" and e.item.type == "user_message")
        await asyncio.sleep(0.5)
        assert waiting.text() == "" and not waiting.ended.is_set()
        seen = await http.get(f"/api/operator/threads/{thread_id}/messages", headers=bearer(op1))
        assert "Are you still there?" in seen.text  # the operator reads it
        sent = await post(http, op1, f"/api/operator/threads/{thread_id}/messages", {"text": "Yes, refund is done."})
        assert sent.status_code == 201
        await waiting.wait_for(is_text("refund is done"), timeout=5)
        back = await post(http, op1, f"/api/operator/threads/{thread_id}/handback", {"resolution": "refund issued"})
        assert back.status_code == 200 and back.json()["handled_by"] == "agent", back.text
        await waiting.wait_for(is_notice("You are back with the assistant"))
        await asyncio.wait_for(waiting.ended.wait(), timeout=10)  # the stream closes once the agent is back

    answered = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert "refund issued" in assistant_text(answered), assistant_text(answered)  # the hand-off is in its context
    resolved = await escalation_of(http, op1, thread_id, "resolved")
    assert resolved["resolved_by"] == first_operator and resolved["resolution"] == "refund issued"

    order = [text for _kind, text in await thread_messages(http, token, thread_id)]
    assert order.index("I want to talk to a human please") < order.index("Hi, Dana here. Let me look.")
    assert order.index("Are you still there?") < order.index("Yes, refund is done.")
    assert "overwritten" not in order


async def test_take_over_a_conversation_that_never_escalated_then_hand_back(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    operator_id = f"op-{new_user()}"
    operator = stack.token(operator_id, operator=True)
    events = await stream_events(http, token, create_request("add buy milk"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]

    taken = await post(http, operator, f"/api/operator/threads/{thread_id}/takeover")
    assert taken.status_code == 200 and taken.json()["handled_by"] == "human", taken.text
    assert taken.json()["escalation_id"]

    async with open_stream(http, token, add_message_request(thread_id, "list tasks")) as stream:
        await stream.wait_for(lambda e: e.type == "thread.item.done" and e.item.type == "user_message")
        reply = await http.post(
            f"/api/operator/threads/{thread_id}/messages",
            json={"text": "I'm Sam, I took over."},
            headers=bearer(operator),
        )
        assert reply.status_code == 201, reply.text
        await stream.wait_for(is_text("I took over"), timeout=5)
        assert "open task" not in stream.text()  # the agent did not answer "list tasks"
        async with open_stream(http, token, None, join=thread_id) as joined:  # a second tab, or after a reload
            await joined.wait_for(is_text("I took over"), timeout=5)  # replayed from the run's log
            await post(http, operator, f"/api/operator/threads/{thread_id}/messages", {"text": "Still here."})
            await joined.wait_for(is_text("Still here."), timeout=5)
            await stream.wait_for(is_text("Still here."), timeout=5)
    back = await post(http, operator, f"/api/operator/threads/{thread_id}/handback")
    assert back.status_code == 200 and back.json()["handled_by"] == "agent"
    answered = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert "buy milk" in assistant_text(answered)


async def test_operators_of_another_org_and_users_cannot_use_the_operator_routes(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    token = stack.token(new_user())
    events = await stream_events(http, token, create_request("add call mum"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    stranger = stack.token(f"op-{new_user()}", org_id="another-org", operator=True)
    for path in ("takeover", "handback"):
        assert (await post(http, stranger, f"/api/operator/threads/{thread_id}/{path}")).status_code == 404
    posted = await post(http, stranger, f"/api/operator/threads/{thread_id}/messages", {"text": "hi"})
    assert posted.status_code == 404
    read = await http.get(f"/api/operator/threads/{thread_id}/messages", headers=bearer(stranger))
    assert read.status_code == 404
    user = stack.token(new_user())
    assert (await post(http, user, f"/api/operator/threads/{thread_id}/takeover")).status_code == 403
    assert (await http.get("/api/operator/escalations", headers=bearer(user))).status_code == 403
    bad = await http.post(
        f"/api/operator/threads/{thread_id}/messages",
        json={"text": ""},
        headers=bearer(stack.token("op", operator=True)),
    )
    assert bad.status_code in (400, 422)
    # The owner may ask for a person without the agent, and may not take their own thread over.
    asked = await post(http, token, f"/chatkit/threads/{thread_id}/escalate", {"reason": "billing question"})
    assert asked.status_code == 200 and asked.json()["handled_by"] == "waiting", asked.text
    assert (await post(http, user, f"/chatkit/threads/{thread_id}/escalate")).status_code == 404


async def test_a_thread_whose_session_was_cancelled_escalates_again(stack: Stack, http: httpx.AsyncClient) -> None:
    token = stack.token(new_user())
    operator = stack.token(f"op-{new_user()}", operator=True)
    events = await stream_events(http, token, create_request("add renew passport"))
    thread_id = events[0].thread.id  # type: ignore[union-attr]
    listed = await http.get("/api/conversations", headers=bearer(token))
    session_id = next(c for c in listed.json()["data"] if c["id"] == thread_id)["metadata"]["session_id"]
    cancelled = await post(http, token, f"/chatkit/sessions/{session_id}/cancel", {"reason": "test"})
    assert cancelled.status_code == 200, cancelled.text

    async with open_stream(http, token, add_message_request(thread_id, "talk to a human")) as stream:
        await stream.wait_for(is_notice("A person from our team will reply here"))
    escalation = await escalation_of(http, operator, thread_id, "open")
    assert escalation["session_id"] != session_id  # a new session carries the escalation


@pytest.fixture(scope="module")
def quick_timeout(stack: Stack) -> Iterator[EdgeReplica]:
    """An agent runner whose hand-offs wait two seconds for a person, and an edge in front of it."""
    with runner_behind_edge(stack, SWITCHBOARD_HANDOFF_TIMEOUT_SECONDS="2") as edge:
        yield edge


async def test_nobody_claims_in_time_the_agent_comes_back_and_the_escalation_stays_queued(
    stack: Stack, quick_timeout: EdgeReplica
) -> None:
    async with httpx.AsyncClient(base_url=quick_timeout.url, timeout=30) as http:
        token = stack.token(new_user())
        operator = stack.token(f"op-{new_user()}", operator=True)
        async with open_stream(http, token, create_request("can I speak to a person?")) as stream:
            await stream.wait_for(is_notice("A person from our team will reply here"))
            await stream.wait_for(is_text("Nobody from our team is free right now"), timeout=15)
            await asyncio.wait_for(stream.ended.wait(), timeout=10)
            thread_id = stream.thread_id
        escalation = await escalation_of(http, operator, thread_id, "open")  # still in the queue
        assert escalation["claimed_by"] is None
        answered = await stream_events(http, token, add_message_request(thread_id, "add water plants"))
        assert "water plants" in assistant_text(answered)  # the agent answers again
