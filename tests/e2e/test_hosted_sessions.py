"""Hosted mode: an agent that is an OpenAI ChatKit workflow gets its sessions from OpenAI's
ChatKit API (a fake the test runs), through the edge, with Switchboard's session record.

What OpenAI received is asserted (the ``OpenAI-Beta: chatkit_beta=v1`` header, the key, the
body); OpenAI's failures map to 502 / 503 (with ``Retry-After``) and leave no session behind;
refresh makes a new OpenAI session for the same Switchboard session; cancel cancels every
live one at OpenAI (and, with OpenAI unreachable, changes nothing); an operator reads the
hosted conversations read-only; ``hitl_escalation`` opens an escalation in the queue.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import Stack, bearer, new_user, stack_ports, start_stack, stop_stack
from tests.fake_chatkit_api import FakeChatKitApi, fake_chatkit_api
from tests.tui.conftest import connected, wait_for
from tui.app import ConsoleApp
from tui.backend import GrpcConsoleBackend
from tui.screens.hosted import HostedConversationScreen
from tui.state import HOSTED_HANDLER

API_KEY = "sk-test-hosted"
AGENTS = textwrap.dedent(
    """
    default_agent = "triage"

    [agents.triage]
    instructions = "You are the front desk."

    [agents.concierge]
    name = "Concierge"
    [agents.concierge.workflow]
    id = "wf_concierge"
    version = "2"
    state_variables = { plan = "pro", seats = 3 }
    file_uploads = true
    recent_threads = 5
    expires_seconds = 900
    max_requests_per_minute = 20
    """
)


@pytest.fixture(scope="module")
def openai_api() -> Iterator[FakeChatKitApi]:
    with fake_chatkit_api() as fake:
        yield fake


@pytest.fixture(scope="module")
def hosted_stack(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str, openai_api: FakeChatKitApi
) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("hosted")
    agents = Path(data) / "agents.toml"
    agents.write_text(AGENTS)
    stack = start_stack(
        data,
        stack_ports(),
        database_url,
        redis_url,
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=openai_api.url,
        SWITCHBOARD_AGENTS_FILE=str(agents),
        SWITCHBOARD_CHATKIT_API_TIMEOUT_SECONDS="1.5",
        SWITCHBOARD_MODEL="offline",
    )
    yield stack
    stop_stack(stack)


@pytest.fixture
async def http(hosted_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hosted_stack.edge, timeout=30) as client:
        yield client


@pytest.fixture
def openai(openai_api: FakeChatKitApi) -> Iterator[FakeChatKitApi]:
    openai_api.fail_next.clear()
    yield openai_api
    openai_api.fail_next.clear()


async def _start(http: httpx.AsyncClient, token: str, **body: Any) -> httpx.Response:
    return await http.post("/chatkit/sessions", json={"agent_id": "concierge", **body}, headers=bearer(token))


async def _sessions_of(database_url: str, user: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT id, status, workflow_id FROM sessions WHERE user_id = $1", user)
    finally:
        await conn.close()


async def test_a_hosted_session_is_created_through_openai_and_recorded(
    hosted_stack: Stack, http: httpx.AsyncClient, openai: FakeChatKitApi
) -> None:
    user = new_user()
    before = len(openai.received("POST", "/v1/chatkit/sessions"))
    reply = await _start(http, hosted_stack.token(user), metadata={"page": "/pricing"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["mode"] == "hosted"
    session = body["session"]
    assert session["mode"] == "hosted" and session["status"] == "active" and session["agent_id"] == "concierge"
    assert session["metadata"] == {"page": "/pricing"}
    hosted = session["hosted"]
    assert hosted["workflow_id"] == "wf_concierge" and hosted["status"] == "active"
    assert body["client_secret"]["token"] == openai.sessions[hosted["openai_session_id"]]["client_secret"]

    sent = openai.received("POST", "/v1/chatkit/sessions")
    assert len(sent) == before + 1
    request = sent[-1]
    assert request.headers["openai-beta"] == "chatkit_beta=v1"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    # OpenAI knows the user by a stable, opaque id: the same as the session shows, not the raw id.
    assert request.body["user"] == hosted["openai_user"] and user not in request.body["user"]
    assert request.body["workflow"] == {
        "id": "wf_concierge",
        "version": "2",
        "state_variables": {"plan": "pro", "seats": 3},
    }
    assert request.body["chatkit_configuration"] == {
        "file_upload": {"enabled": True},
        "history": {"enabled": True, "recent_threads": 5},
        "automatic_thread_titling": {"enabled": True},
    }
    assert request.body["expires_after"] == {"anchor": "created_at", "seconds": 900}
    assert request.body["rate_limits"] == {"max_requests_per_1_minute": 20}

    again = await http.get(f"/chatkit/sessions/{session['id']}", headers=bearer(hosted_stack.token(user)))
    assert again.status_code == 200 and again.json()["hosted"] == hosted
    # The same user's next session is known to OpenAI by the same id (ChatKit history follows them).
    second = await _start(http, hosted_stack.token(user))
    assert second.json()["session"]["hosted"]["openai_user"] == hosted["openai_user"]


async def test_the_default_agent_stays_self_hosted(hosted_stack: Stack, http: httpx.AsyncClient) -> None:
    reply = await http.post("/chatkit/sessions", json={}, headers=bearer(hosted_stack.token(new_user())))
    assert reply.status_code == 200, reply.text
    assert reply.json()["mode"] == "self_hosted" and reply.json()["session"]["hosted"] is None


async def test_refresh_links_a_new_openai_session_and_cancel_cancels_every_live_one(
    hosted_stack: Stack, http: httpx.AsyncClient, openai: FakeChatKitApi
) -> None:
    user = new_user()
    token = hosted_stack.token(user)
    created = (await _start(http, token)).json()
    session_id = created["session"]["id"]
    first = created["session"]["hosted"]["openai_session_id"]

    refreshed = await http.post(f"/chatkit/sessions/{session_id}/refresh", headers=bearer(token))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["token"] != created["client_secret"]["token"]
    current = (await http.get(f"/chatkit/sessions/{session_id}", headers=bearer(token))).json()
    second = current["hosted"]["openai_session_id"]
    assert second != first and refreshed.json()["token"] == openai.sessions[second]["client_secret"]
    assert openai.sessions[second]["user"] == openai.sessions[first]["user"]
    assert openai.sessions[first]["status"] == "active"  # left to expire: a request in flight may still use it

    cancelled = await http.post(
        f"/chatkit/sessions/{session_id}/cancel", json={"reason": "done"}, headers=bearer(token)
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["hosted"]["status"] == "cancelled"
    cancels = {r.path for r in openai.received("POST", "/v1/chatkit/sessions/")}
    assert {f"/v1/chatkit/sessions/{first}/cancel", f"/v1/chatkit/sessions/{second}/cancel"} <= cancels
    assert openai.sessions[first]["status"] == openai.sessions[second]["status"] == "cancelled"

    refused = await http.post(f"/chatkit/sessions/{session_id}/refresh", headers=bearer(token))
    assert refused.status_code == 409, refused.text


@pytest.mark.parametrize(
    ("failure", "status", "says"),
    [
        (401, 502, "Incorrect API key"),
        (404, 502, "wf_missing"),
        (429, 503, "rate-limiting"),
        (500, 503, "500"),
        ("hang", 503, "did not answer"),
    ],
)
async def test_openai_failures_map_to_clear_statuses_and_record_nothing(
    hosted_stack: Stack,
    http: httpx.AsyncClient,
    openai: FakeChatKitApi,
    database_url: str,
    failure: int | str,
    status: int,
    says: str,
) -> None:
    user = new_user()
    openai.fail_next.append(failure)
    reply = await _start(http, hosted_stack.token(user))
    assert reply.status_code == status, reply.text
    assert says in reply.json()["error"]["message"]
    if failure == 429:
        assert reply.headers["retry-after"] == "7"
    elif status == 503:
        assert int(reply.headers["retry-after"]) >= 1
    assert await _sessions_of(database_url, user) == []
    # The next attempt goes through.
    assert (await _start(http, hosted_stack.token(user))).status_code == 200


async def test_cancel_with_openai_unreachable_changes_nothing(
    hosted_stack: Stack, http: httpx.AsyncClient, openai: FakeChatKitApi
) -> None:
    token = hosted_stack.token(new_user())
    session_id = (await _start(http, token)).json()["session"]["id"]
    openai.fail_next.append(500)
    refused = await http.post(f"/chatkit/sessions/{session_id}/cancel", headers=bearer(token))
    assert refused.status_code == 503, refused.text
    still = (await http.get(f"/chatkit/sessions/{session_id}", headers=bearer(token))).json()
    assert still["status"] == "active" and still["hosted"]["status"] == "active"
    assert (await http.post(f"/chatkit/sessions/{session_id}/cancel", headers=bearer(token))).status_code == 200


async def test_another_users_hosted_session_is_404(
    hosted_stack: Stack, http: httpx.AsyncClient, openai: FakeChatKitApi
) -> None:
    owner = hosted_stack.token(new_user())
    session_id = (await _start(http, owner)).json()["session"]["id"]
    stranger = bearer(hosted_stack.token(new_user()))
    creates = len(openai.received("POST", "/v1/chatkit/sessions"))
    for method, path in [
        ("GET", f"/chatkit/sessions/{session_id}"),
        ("POST", f"/chatkit/sessions/{session_id}/refresh"),
        ("POST", f"/chatkit/sessions/{session_id}/cancel"),
        ("GET", f"/chatkit/sessions/{session_id}/hosted/threads"),
    ]:
        reply = await http.request(method, path, headers=stranger)
        assert reply.status_code == 404, (path, reply.text)
    assert len(openai.received("POST", "/v1/chatkit/sessions")) == creates  # nothing reached OpenAI


async def test_hosted_conversations_are_read_through_openai_by_the_user_and_operators(
    hosted_stack: Stack, http: httpx.AsyncClient, openai: FakeChatKitApi
) -> None:
    user = new_user()
    session = (await _start(http, hosted_stack.token(user))).json()["session"]
    mine = openai.add_thread(
        session["hosted"]["openai_user"], "Order status", [("user", "Where is my order?"), ("assistant", "It ships.")]
    )
    theirs = openai.add_thread("sb_someone_else", "Private", [("user", "secret")])
    for token in (hosted_stack.token(user), hosted_stack.token(new_user(), operator=True)):
        threads = await http.get(f"/chatkit/sessions/{session['id']}/hosted/threads", headers=bearer(token))
        assert threads.status_code == 200, threads.text
        assert [t["id"] for t in threads.json()["data"]] == [mine]
        items = await http.get(f"/chatkit/sessions/{session['id']}/hosted/threads/{mine}/items", headers=bearer(token))
        assert items.status_code == 200, items.text
        texts = [(i["type"], i["content"][0]["text"]) for i in items.json()["data"]]
        assert texts == [("chatkit.user_message", "Where is my order?"), ("chatkit.assistant_message", "It ships.")]
    # Another user's OpenAI thread is not reachable through this session.
    other = await http.get(
        f"/chatkit/sessions/{session['id']}/hosted/threads/{theirs}/items", headers=bearer(hosted_stack.token(user))
    )
    assert other.status_code == 404, other.text
    # A self-hosted session has no hosted threads.
    plain = (await http.post("/chatkit/sessions", json={}, headers=bearer(hosted_stack.token(user)))).json()
    refused = await http.get(
        f"/chatkit/sessions/{plain['session']['id']}/hosted/threads", headers=bearer(hosted_stack.token(user))
    )
    assert refused.status_code == 409, refused.text


async def test_a_hitl_escalation_event_opens_an_escalation_in_the_queue(
    hosted_stack: Stack, http: httpx.AsyncClient
) -> None:
    user = new_user()
    session_id = (await _start(http, hosted_stack.token(user))).json()["session"]["id"]
    event = await http.post(
        f"/chatkit/sessions/{session_id}/events",
        json={"type": "hitl_escalation", "payload": {"reason": "wants a refund from a person"}},
        headers=bearer(hosted_stack.token(user)),
    )
    assert event.status_code == 201, event.text
    queue = await http.get(
        "/api/operator/escalations?status=open&limit=200", headers=bearer(hosted_stack.token(new_user(), operator=True))
    )
    assert queue.status_code == 200, queue.text
    mine = [e for e in queue.json()["data"] if e["session_id"] == session_id]
    assert [e["reason"] for e in mine] == ["wants a refund from a person"]


async def test_the_console_lists_a_hosted_session_and_shows_its_items(
    hosted_stack: Stack, http: httpx.AsyncClient, openai: FakeChatKitApi
) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    user = new_user()
    backend = GrpcConsoleBackend(
        token=hosted_stack.token("op-hosted", org_id=org, operator=True),
        session_api=f"127.0.0.1:{hosted_stack.ports['session_api']}",
        thread_store=f"127.0.0.1:{hosted_stack.ports['thread_store']}",
        timeout=3.0,
    )
    app = ConsoleApp(backend, metrics_interval=60)
    async with app.run_test(size=(130, 36)) as pilot:
        await connected(pilot, app)
        session = (await _start(http, hosted_stack.token(user, org_id=org))).json()["session"]
        openai.add_thread(
            session["hosted"]["openai_user"],
            "Refund request",
            [("user", "I want my money back"), ("assistant", "I can help with that refund.")],
        )
        table = app.dashboard.sessions_table
        await wait_for(pilot, lambda: session["id"] in table.shown_ids, what="the hosted session")
        row = app.state.row(session["id"])
        assert row is not None and row.session.hosted and row.handler == HOSTED_HANDLER

        table.focus()
        table.move_cursor(row=table.get_row_index(session["id"]))
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, HostedConversationScreen) and app.screen.loaded, what="open"
        )
        screen = app.screen
        assert isinstance(screen, HostedConversationScreen)
        assert "Refund request" in screen.text
        assert "user: I want my money back" in screen.text
        assert "agent: I can help with that refund." in screen.text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HostedConversationScreen), what="back")
