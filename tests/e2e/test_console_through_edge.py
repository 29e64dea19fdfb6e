"""The console on the real stack: what a user does through the edge shows up live for an operator."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import Stack, bearer, create_request, escalated, stream_events
from tests.tui.conftest import connected, wait_for
from tui.app import ConsoleApp
from tui.backend import GrpcConsoleBackend
from tui.screens.conversation import ConversationScreen


async def test_a_session_message_and_escalation_from_the_edge_reach_the_console(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    backend = GrpcConsoleBackend(
        token=stack.token("op-e2e", org_id=org, operator=True),
        session_api=f"127.0.0.1:{stack.ports['session_api']}",
        thread_store=f"127.0.0.1:{stack.ports['thread_store']}",
        timeout=3.0,
    )
    app = ConsoleApp(backend, metrics_interval=0.5)
    async with app.run_test(size=(130, 36)) as pilot:
        await connected(pilot, app)
        reply = await http.post(
            "/chatkit/sessions", json={"agent_id": "triage"}, headers=bearer(stack.token(user, org_id=org))
        )
        session_id = reply.json()["session"]["id"]
        secret = reply.json()["client_secret"]["token"]
        table = app.dashboard.sessions_table
        took = await wait_for(pilot, lambda: session_id in table.shown_ids, timeout=1.0, what="the edge's session")
        assert took < 1.0

        events = await stream_events(http, secret, create_request("I want to talk to a human please"), until=escalated)
        thread_id = events[0].thread.id  # type: ignore[union-attr]
        queue = app.dashboard.queue
        await wait_for(pilot, lambda: [e.thread_id for e in queue.shown] == [thread_id], what="the escalation")

        table.focus()
        table.move_cursor(row=table.get_row_index(session_id))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        await wait_for(pilot, lambda: "talk to a human please" in screen.transcript.text, what="the user's message")
        await wait_for(pilot, lambda: "escalate_to_human" in screen.transcript.text, what="the tool call")
