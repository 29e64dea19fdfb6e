"""The console against real services: sessions, transcripts and escalations arrive live and are worked by keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from chatkit.types import AssistantMessageContent, AssistantMessageItem
from textual.widgets import Static

from services.agent_runner.server import AgentRunnerConfig, build_agent_runner
from services.thread_store.client import Handler
from switchboard.errors import Unauthenticated
from switchboard.principal import Principal
from tests.agent_runner.conftest import SwitchableModels
from tests.thread_store.helpers import Ctx, user_message
from tests.tui.conftest import Stack, connected, notices, operator_token, wait_for
from tui.data import EscalationInfo
from tui.screens.conversation import ConversationScreen
from tui.screens.dialogs import HandBackScreen
from tui.widgets.status_line import StatusLine

SIZE = (130, 36)


def keys_for(text: str) -> list[str]:
    """The key presses that type ``text``."""
    return ["space" if ch == " " else ch for ch in text]


async def test_a_session_created_through_session_api_appears_in_the_table_within_a_second(
    stack: Stack, org: str, new_user: Callable[[], Principal]
) -> None:
    app = stack.console(org)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        user = new_user()
        created = await stack.sessions.create_session(user, agent_id="support", channel="voice")

        table = app.dashboard.sessions_table
        took = await wait_for(pilot, lambda: created.session.id in table.shown_ids, timeout=1.0, what="the new row")

        cells = {key: table.get_cell(created.session.id, key).plain for key in table.column_keys}
        assert cells["user"] == user.user_id
        assert (cells["title"], cells["handler"]) == ("no conversation yet", "")
        assert (cells["status"], cells["channel"]) == ("active", "voice")
        assert took < 1.0
        await stack.sessions.end_session(user, created.session.id)
        await wait_for(pilot, lambda: table.get_cell(created.session.id, "status").plain == "ended", what="ended")


async def test_a_users_message_appears_in_the_open_transcript_and_a_streamed_update_replaces_the_item(
    stack: Stack, org: str, new_user: Callable[[], Principal]
) -> None:
    user = new_user()
    thread_id = await stack.user_thread(user, "my parcel never arrived")
    created = await stack.sessions.create_session(user, thread_id=thread_id)
    app = stack.console(org)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        table = app.dashboard.sessions_table
        await wait_for(pilot, lambda: created.session.id in table.shown_ids, what="the session row")
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        assert "my parcel never arrived" in screen.transcript.text

        ctx = Ctx(user_id=user.user_id, org_id=org)
        message = user_message(thread_id, "it was due on Monday", at=datetime.now(UTC))
        await stack.threads.add_thread_item(thread_id, message, ctx)
        await wait_for(pilot, lambda: message.id in screen.transcript.item_ids, what="the user's new message")
        assert "it was due on Monday" in screen.transcript.text

        answer = AssistantMessageItem(
            id="msg_streamed_answer",
            thread_id=thread_id,
            created_at=datetime.now(UTC),
            content=[AssistantMessageContent(text="Let me")],
        )
        await stack.threads.add_thread_item(thread_id, answer, ctx)
        await wait_for(pilot, lambda: "Let me" in screen.transcript.text, what="the start of the answer")
        renders = screen.transcript.item_renders
        grown = answer.model_copy(update={"content": [AssistantMessageContent(text="Let me check the courier.")]})
        await stack.threads.save_item(thread_id, grown, ctx)
        await wait_for(pilot, lambda: "Let me check the courier." in screen.transcript.text, what="the grown answer")
        assert screen.transcript.item_ids.count(answer.id) == 1
        assert screen.transcript.item_renders - renders == 1  # only the updated item was rendered again


async def test_an_escalation_arrives_live_as_waiting_and_a_claim_without_the_agent_runner_says_why(
    stack: Stack, org: str, new_user: Callable[[], Principal]
) -> None:
    user = new_user()
    thread_id = await stack.user_thread(user, "I want to speak to a human")
    created = await stack.sessions.create_session(user, thread_id=thread_id)
    session_id = created.session.id
    app = stack.console(org, operator=f"op-{org}")  # no agent runner listens: hand-offs cannot go through
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        table = app.dashboard.sessions_table
        await wait_for(pilot, lambda: session_id in table.shown_ids, what="the session row")
        assert table.get_cell(session_id, "handler").plain == "agent"

        escalation = await stack.sessions.open_escalation(user, session_id, thread_id=thread_id, reason="a human")
        queue = app.dashboard.queue
        await wait_for(pilot, lambda: [e.id for e in queue.shown] == [escalation.id], what="the queued escalation")
        await wait_for(pilot, lambda: table.get_cell(session_id, "escalation").plain == "⚑ open")
        assert table.get_cell(session_id, "handler").plain.startswith("waiting")

        await pilot.press("2", "c")  # claiming takes the thread over through the agent runner
        await wait_for(pilot, lambda: any(n.startswith("could not claim: ") for n in notices(app)), what="the error")
        [error] = [n for n in notices(app) if n.startswith("could not claim: ")]
        assert "agent_runner" in error and "unavailable" in error
        still = EscalationInfo.of(await stack.sessions.get_escalation(user, escalation.id))
        assert (still.status, still.claimed_by) == ("open", "")  # nothing was half done
        assert table.get_cell(session_id, "handler").plain.startswith("waiting")


async def test_a_token_without_the_operator_role_is_refused_with_a_clear_status(stack: Stack, org: str) -> None:
    app = stack.console(org, token=operator_token("plain-user", org, roles=()))
    async with app.run_test(size=SIZE) as pilot:
        line = app.dashboard.query_one(StatusLine)
        await wait_for(pilot, lambda: app.connections["session_api"].state == "failed", what="refused")
        assert "no operator role" in line.plain
        assert app.is_running


@pytest.fixture(scope="module")
async def runner_target(stack: Stack, database_url: str, redis_url: str) -> AsyncIterator[str]:
    """An agent runner (offline model) on the stack's thread_store and session_api."""
    config = AgentRunnerConfig(
        database_url=database_url,
        redis_url=redis_url,
        thread_store_target=stack.thread_store.target,
        session_api_target=stack.session_api.target,
        migrate=False,
    )
    server, _service = await build_agent_runner(config, models=SwitchableModels())
    port = await server.start("127.0.0.1", 0)
    yield f"127.0.0.1:{port}"
    await server.stop(grace=0)


async def _handler_becomes(stack: Stack, thread_id: str, owner: Principal, kind: str) -> Handler:
    """The thread's handler once it is ``kind`` (the console's calls run in the background)."""
    deadline = time.monotonic() + 5
    while True:
        handler = await stack.threads.load_handler(thread_id, owner)
        if handler.kind == kind or time.monotonic() > deadline:
            assert handler.kind == kind, handler
            return handler
        await asyncio.sleep(0.05)


async def test_take_over_reply_and_hand_back_from_key_presses_against_the_real_services(
    stack: Stack, org: str, new_user: Callable[[], Principal], runner_target: str
) -> None:
    user = new_user()
    thread_id = await stack.user_thread(user, "my order is late")
    created = await stack.sessions.create_session(user, thread_id=thread_id)
    session_id = created.session.id
    owner = Principal(user_id=user.user_id, org_id=org)
    thread = await stack.threads.load_thread(thread_id, owner)
    thread.metadata["session_id"] = session_id  # as the agent runner records a conversation's session
    await stack.threads.save_thread(thread, owner)
    operator = f"op-{org}"
    app = stack.console(org, operator=operator, agent_runner=runner_target)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        table = app.dashboard.sessions_table
        await wait_for(pilot, lambda: session_id in table.shown_ids, what="the session row")
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
        screen = app.screen
        assert isinstance(screen, ConversationScreen)

        await pilot.press("t")
        taken = await _handler_becomes(stack, thread_id, owner, "human")
        assert taken.operator_id == operator and taken.escalation_id
        info = screen.query_one("#conversation-info", Static)
        await wait_for(pilot, lambda: "held by you" in str(info.render()), what="the header says you hold it")
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.get_cell(session_id, "handler").plain == "you", what="the table: you")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        info = screen.query_one("#conversation-info", Static)

        await pilot.press("r", *keys_for("Hello from support"), "enter")
        await wait_for(pilot, lambda: "Hello from support" in screen.transcript.text, what="the reply shown")
        page = await stack.threads.load_thread_items(thread_id, None, 50, "asc", owner)
        [reply] = [i for i in page.data if i.type == "assistant_message" and i.id.startswith("msg_op_")]
        assert "Hello from support" in reply.content[0].text

        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, HandBackScreen), what="the hand-back prompt")
        await pilot.press(*keys_for("order shipped"), "enter")
        await _handler_becomes(stack, thread_id, owner, "agent")
        await wait_for(pilot, lambda: "answered by the agent" in str(info.render()), what="the header says agent")
        resolved = await stack.sessions.get_escalation(owner, taken.escalation_id or "")
        assert (resolved.resolved_by, resolved.resolution) == (operator, "order shipped")
        page = await stack.threads.load_thread_items(thread_id, None, 50, "asc", owner)
        hidden = [i for i in page.data if i.type == "hidden_context_item"]
        assert hidden and "order shipped" in str(hidden[-1].content)  # what the agent reads next


async def test_x_cancels_a_session_in_session_api_and_its_client_secret_stops_working(
    stack: Stack, org: str, new_user: Callable[[], Principal], runner_target: str
) -> None:
    user = new_user()
    created = await stack.sessions.create_session(user)
    session_id = created.session.id
    app = stack.console(org, agent_runner=runner_target)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        table = app.dashboard.sessions_table
        await wait_for(pilot, lambda: session_id in table.shown_ids, what="the session row")
        table.focus()
        table.move_cursor(row=table.shown_ids.index(session_id))
        await wait_for(pilot, lambda: table.selected_session_id == session_id, what="the row selected")
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: table.get_cell(session_id, "status").plain == "cancelled", what="the row")
        assert any(f"cancelled {user.user_id}'s session" in n for n in notices(app))
    assert (await stack.sessions.get_session(user, session_id)).status == "cancelled"
    with pytest.raises(Unauthenticated):
        await stack.sessions.authenticate(created.client_secret.token)
