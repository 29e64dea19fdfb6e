"""Turns started by other services: a service token (or an operator) posts a message into a user's
conversation through the edge (and over gRPC); the run answers it, the user's join sees it, a
repeated Idempotency-Key starts nothing new, the wrong tokens are refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import httpx
import pytest

from switchboard.api.v1 import agent_runner_pb2, common_pb2
from switchboard.api.v1.agent_runner_pb2_grpc import AgentRunnerStub
from switchboard.principal import Principal
from switchboard.service_auth import mint_service_token
from tests.conftest import INTERNAL_SECRET
from tests.e2e.conftest import Stack, bearer, create_request, new_user, read_sse, stream_events, thread_messages

ORG = "e2e"


def _token(
    *, scopes: tuple[str, ...] = ("runs:write",), org: str | None = ORG, audience: str = "edge", **kw: Any
) -> str:
    token, _ = mint_service_token(
        INTERNAL_SECRET.encode(), audience=audience, service="billing-worker", scopes=scopes, org_id=org, **kw
    )
    return token


async def _thread(http: httpx.AsyncClient, token: str) -> str:
    events = await stream_events(http, token, create_request("hello"))
    return events[0].thread.id  # type: ignore[union-attr]


async def _finished(http: httpx.AsyncClient, token: str, thread_id: str, run_id: str) -> dict[str, Any]:
    for _ in range(600):
        runs = (await http.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
        run = next(r for r in runs if r["id"] == run_id)
        if run["status"] not in ("queued", "running"):
            return dict(run)
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish: {runs}")


async def test_a_service_posts_into_a_users_thread_and_the_run_answers_it(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    alice = new_user()
    token = stack.token(alice)
    thread_id = await _thread(http, token)
    body = {"input": {"text": "count to 600"}}
    headers = {**bearer(_token()), "Idempotency-Key": "invoice-7-paid"}
    posted = await http.post(f"/api/threads/{thread_id}/runs", json=body, headers=headers)
    assert posted.status_code == 202, posted.text
    run_id = posted.json()["run"]["id"]
    assert posted.json()["repeated"] is False

    # Alice, in the chat, joins the run it started: her stream shows the message and the answer.
    async with http.stream("GET", f"/chatkit/threads/{thread_id}/stream", headers=bearer(token)) as joined:
        assert joined.status_code == 200
        events = [e.event async for e in read_sse(joined)]
    done = [e.item for e in events if e.type == "thread.item.done"]  # type: ignore[union-attr]
    assert any(i.type == "assistant_message" and i.content[0].text.endswith("600.") for i in done), done  # type: ignore[union-attr]

    again = await http.post(f"/api/threads/{thread_id}/runs", json=body, headers=headers)
    assert again.status_code == 202 and again.json()["repeated"] is True
    assert again.json()["run"]["id"] == run_id  # nothing new started
    assert (await _finished(http, token, thread_id, run_id))["status"] == "completed"
    runs = (await http.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
    assert len(runs) == 2  # the user's first turn, and one for the service's message

    messages = await thread_messages(http, token, thread_id)
    texts = [" ".join(text.split()) for kind, text in messages if kind == "user_message"]
    assert texts[-1] == "billing-worker count to 600"  # labelled with its source (an input tag)
    assert messages[-1][0] == "assistant_message"
    items = (
        await http.post(
            "/chatkit",
            content=json.dumps({"type": "items.list", "params": {"thread_id": thread_id, "limit": 50}}),
            headers={**bearer(token), "Content-Type": "application/json"},
        )
    ).json()["data"]
    posted_item = next(i for i in items if i["id"] == posted.json()["item_id"])
    assert posted_item["content"][0] == {
        "type": "input_tag",
        "id": "source:billing-worker",
        "text": "billing-worker",
        "data": {"source": "billing-worker"},
        "interactive": False,
    }


async def test_a_system_note_is_read_by_the_agent_not_shown_as_a_message(stack: Stack, http: httpx.AsyncClient) -> None:
    alice = new_user()
    token = stack.token(alice)
    thread_id = await _thread(http, token)
    body = {"input": {"text": "the customer is on the premium plan"}, "role": "system_note"}
    posted = await http.post(f"/api/threads/{thread_id}/runs", json=body, headers=bearer(_token()))
    assert posted.status_code == 202, posted.text
    assert (await _finished(http, token, thread_id, posted.json()["run"]["id"]))["status"] == "completed"
    messages = await thread_messages(http, token, thread_id)
    assert not any("premium plan" in text for _kind, text in messages)
    assert [kind for kind, _ in messages].count("assistant_message") == 2  # the agent answered after the note


@pytest.mark.parametrize(
    ("name", "headers", "status"),
    [
        ("no scope", lambda s: bearer(_token(scopes=("runs:read",))), 403),
        ("not bound to an org", lambda s: bearer(_token(org=None)), 403),
        ("another org", lambda s: bearer(_token(org="other-org")), 404),
        ("for another audience", lambda s: bearer(_token(audience="agent_runner")), 401),
        ("another user's token", lambda s: bearer(s.token(new_user())), 404),
        ("another org's operator", lambda s: bearer(s.token(new_user(), org_id="other-org", operator=True)), 404),
        ("garbage", lambda s: bearer("nonsense"), 401),
    ],
)
async def test_the_wrong_callers_are_refused_and_nothing_is_written(
    stack: Stack, http: httpx.AsyncClient, name: str, headers: Any, status: int
) -> None:
    token = stack.token(new_user())
    thread_id = await _thread(http, token)
    before = await thread_messages(http, token, thread_id)
    refused = await http.post(
        f"/api/threads/{thread_id}/runs", json={"input": {"text": "intrusion"}}, headers=headers(stack)
    )
    assert refused.status_code == status, (name, refused.text)
    assert await thread_messages(http, token, thread_id) == before


async def test_an_operator_of_the_org_posts_labelled_as_the_operator(stack: Stack, http: httpx.AsyncClient) -> None:
    token = stack.token(new_user())
    thread_id = await _thread(http, token)
    operator = new_user()
    posted = await http.post(
        f"/api/threads/{thread_id}/runs",
        json={"input": {"text": "checking in"}},
        headers=bearer(stack.token(operator, operator=True)),
    )
    assert posted.status_code == 202, posted.text
    await _finished(http, token, thread_id, posted.json()["run"]["id"])
    texts = [" ".join(t.split()) for k, t in await thread_messages(http, token, thread_id) if k == "user_message"]
    assert texts[-1] == f"operator {operator} checking in"


async def test_the_same_over_grpc_with_a_service_token_naming_the_user(stack: Stack, http: httpx.AsyncClient) -> None:
    alice = new_user()
    token = stack.token(alice)
    thread_id = await _thread(http, token)
    service = mint_service_token(
        INTERNAL_SECRET.encode(), audience="agent_runner", service="crm", scopes=("runs:write",), org_id=ORG
    )[0]
    message = {
        "type": "user_message",
        "id": "msg_from_crm_1",
        "thread_id": thread_id,
        "created_at": "2026-01-01T00:00:00Z",
        "content": [{"type": "input_text", "text": "from the CRM"}],
        "attachments": [],
        "inference_options": {},
    }
    request = agent_runner_pb2.RunRequest(
        principal=common_pb2.Principal(user_id=alice, org_id=ORG),
        thread_id=thread_id,
        user_message_json=json.dumps(message).encode(),
    )
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports['agent_runner']}") as channel:
        replies = list(
            AgentRunnerStub(channel).Run(request, timeout=30, metadata=(("authorization", f"Bearer {service}"),))
        )
    assert replies and replies[-1].status == "completed"
    assert ("user_message", "from the CRM") in await thread_messages(http, token, thread_id)
    _ = Principal  # the principal of the body is the user the service acts upon
