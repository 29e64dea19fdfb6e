"""The console against real services: sessions, transcripts and escalations arrive live and are worked by keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from chatkit.types import AssistantMessageContent, AssistantMessageItem

from switchboard.principal import Principal
from tests.thread_store.helpers import Ctx, user_message
from tests.tui.conftest import Stack, connected, operator_token, wait_for
from tui.screens.conversation import ConversationScreen
from tui.screens.dialogs import ResolveScreen
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

        row = table.get_row(created.session.id)
        assert [cell.plain for cell in row[:5]] == [user.user_id, org, "support", "voice", "active"]
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


async def test_an_escalation_is_claimed_replied_to_and_resolved_from_the_keyboard(
    stack: Stack, org: str, new_user: Callable[[], Principal]
) -> None:
    user = new_user()
    thread_id = await stack.user_thread(user, "I want to speak to a human")
    created = await stack.sessions.create_session(user, thread_id=thread_id)
    operator = f"op-{org}"
    app = stack.console(org, operator=operator)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        escalation = await stack.sessions.open_escalation(
            user, created.session.id, thread_id=thread_id, reason="asked for a human"
        )
        queue = app.dashboard.queue
        await wait_for(pilot, lambda: [e.id for e in queue.shown] == [escalation.id], what="the queued escalation")
        table = app.dashboard.sessions_table
        await wait_for(pilot, lambda: table.get_cell(created.session.id, "escalation").plain == "⚑ open")

        await pilot.press("2", "c")
        await wait_for(pilot, lambda: queue.shown and queue.shown[0].claimed_by == operator, what="claimed")
        assert (await stack.sessions.get_escalation(user, escalation.id)).claimed_by == operator

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        await pilot.press(*keys_for("Hi, this is Sam from support"), "enter")

        async def reply_in_thread() -> list[str]:
            page = await stack.threads.load_thread_items(thread_id, None, 50, "asc", Ctx(user.user_id, org))
            return [item.content[0].text for item in page.data if item.type == "assistant_message"]  # type: ignore[union-attr]

        replies: list[str] = []
        deadline = time.monotonic() + 5
        while not replies and time.monotonic() < deadline:  # read back as the user would on reload
            replies = await reply_in_thread()
            await pilot.pause(0.02)
        assert replies == ["Hi, this is Sam from support"]
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        await wait_for(
            pilot, lambda: "operator" in screen.transcript.text and "Sam from support" in screen.transcript.text
        )

        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ResolveScreen), what="the resolution prompt")
        await pilot.press(*keys_for("refund issued"), "enter")
        await wait_for(pilot, lambda: not queue.shown, what="the queue empties")
        resolved = await stack.sessions.get_escalation(user, escalation.id)
        assert (resolved.resolved_by, resolved.resolution) == (operator, "refund issued")
        assert table.get_cell(created.session.id, "escalation").plain == ""


async def test_a_token_without_the_operator_role_is_refused_with_a_clear_status(stack: Stack, org: str) -> None:
    app = stack.console(org, token=operator_token("plain-user", org, roles=()))
    async with app.run_test(size=SIZE) as pilot:
        line = app.dashboard.query_one(StatusLine)
        await wait_for(pilot, lambda: app.connections["session_api"].state == "failed", what="refused")
        assert "no operator role" in line.plain
        assert app.is_running
