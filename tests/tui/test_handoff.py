"""The console's half of the hand-off: take over (t), reply, hand back (b), and who answers each conversation.

The in-memory backend follows the agent runner's rules (one holder per thread;
only the holder replies; another operator's thread cannot be taken), so these
tests drive the keys and check what the backend stored and what the widgets show.
"""

from __future__ import annotations

from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, Static

from services.agent_runner.client import Handoff
from switchboard.errors import Unavailable
from tests.tui.conftest import notices, wait_for
from tests.tui.fakes import NOW, InMemoryBackend, ago, fixed_clock, handler_change, user_says
from tests.tui.test_live import keys_for
from tui.app import ConsoleApp
from tui.backend import AGENT_RUNNER
from tui.data import SessionInfo, ThreadChange
from tui.screens.conversation import ConversationScreen
from tui.screens.dialogs import HandBackScreen

SIZE = (130, 36)
FRANK = "ses_06"
FRANK_THREAD = "thr_frank"


def backend_with_frank() -> InMemoryBackend:
    """The demo org plus Frank, whose live conversation the agent answers (the newest session: the first row)."""
    backend = InMemoryBackend()
    backend.sessions.append(
        SessionInfo(
            id=FRANK,
            user_id="frank",
            org_id="acme",
            agent_id="support",
            channel="web",
            status="active",
            created_at=ago(50),
            thread_ids=(FRANK_THREAD,),
        )
    )
    backend.transcripts[FRANK_THREAD] = [user_says(FRANK_THREAD, "msg_f1", "where is my parcel?", at=ago(45))]
    return backend


def handler_cell(app: ConsoleApp, session_id: str) -> str:
    """Who the sessions table says handles a session: ``agent``, ``waiting``, ``you`` or an operator's id.

    (The cell itself names the agent and ticks the wait: ``test_sessions_table`` checks the words.)
    """
    row = app.dashboard.sessions_table.shown_row(session_id)
    return row.handler if row is not None else ""


def header(screen: ConversationScreen) -> str:
    """The conversation's header line."""
    return str(screen.query_one("#conversation-info", Static).render())


def operator_replies(backend: InMemoryBackend, thread_id: str) -> list[str]:
    """The texts of the operators' replies stored in a thread."""
    return [
        "".join(part.text for part in item.content)
        for item in backend.transcripts.get(thread_id, [])
        if item.type == "assistant_message" and item.id.startswith("msg_op_")
    ]


async def dashboard_ready(pilot: Pilot[None], app: ConsoleApp, rows: int = 6) -> None:
    """Wait for the sessions (signed in, snapshot shown)."""
    await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == rows, what="the sessions")
    await pilot.pause()


async def open_conversation(pilot: Pilot[None], app: ConsoleApp) -> ConversationScreen:
    """Open the selected session's conversation and wait for its transcript."""
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
    screen = app.screen
    assert isinstance(screen, ConversationScreen)
    return screen


async def test_t_takes_over_and_b_hands_back_and_the_table_shows_agent_then_you_then_agent() -> None:
    backend = backend_with_frank()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app)
        table = app.dashboard.sessions_table
        assert table.selected_session_id == FRANK
        assert handler_cell(app, FRANK) == "agent"
        assert [handler_cell(app, s) for s in ("ses_01", "ses_02", "ses_03", "ses_04")] == [
            "waiting",  # Alice's escalation is open
            "op-sam",  # Bob's is held by another operator
            "",  # Carol has no conversation yet
            "agent",
        ]

        await pilot.press("t")
        await wait_for(pilot, lambda: handler_cell(app, FRANK) == "you", what="taken over")
        handler = backend.handler(FRANK_THREAD)
        assert (handler.kind, handler.operator_id) == ("human", "op-kim")
        taken = backend.escalations[handler.escalation_id or ""]
        assert (taken.thread_id, taken.status, taken.claimed_by) == (FRANK_THREAD, "claimed", "op-kim")
        await wait_for(pilot, lambda: taken.id in [e.id for e in app.dashboard.queue.shown], what="queued")
        assert "you hold frank's conversation; b hands it back to the agent" in notices(app)

        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, HandBackScreen), what="the hand-back prompt")
        await pilot.press(*keys_for("parcel found"), "enter")
        await wait_for(pilot, lambda: handler_cell(app, FRANK) == "agent", what="handed back")
        assert backend.handler(FRANK_THREAD).kind == "agent"
        resolved = backend.escalations[taken.id]
        assert (resolved.status, resolved.resolved_by, resolved.resolution) == ("resolved", "op-kim", "parcel found")
        await wait_for(pilot, lambda: taken.id not in [e.id for e in app.dashboard.queue.shown], what="unqueued")


async def test_escape_at_the_hand_back_prompt_keeps_the_conversation() -> None:
    backend = backend_with_frank()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app)
        await pilot.press("t")
        await wait_for(pilot, lambda: handler_cell(app, FRANK) == "you", what="taken over")
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, HandBackScreen), what="the hand-back prompt")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HandBackScreen)
        assert backend.handler(FRANK_THREAD).operator_id == "op-kim"
        assert handler_cell(app, FRANK) == "you"


async def test_the_holder_replies_from_the_keyboard_and_the_reply_is_stored_and_shown() -> None:
    backend = backend_with_frank()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app)
        screen = await open_conversation(pilot, app)
        assert "answered by the agent" in header(screen)

        await pilot.press("t")
        await wait_for(pilot, lambda: "held by you" in header(screen), what="the header says so")
        await pilot.press("r", *keys_for("Hi, this is Kim from support"), "enter")
        await wait_for(pilot, lambda: operator_replies(backend, FRANK_THREAD), what="the stored reply")
        assert operator_replies(backend, FRANK_THREAD) == ["Hi, this is Kim from support"]
        [item_id] = [i.id for i in backend.transcripts[FRANK_THREAD] if i.id.startswith("msg_op_")]
        assert backend.authors[item_id] == "op-kim"
        await wait_for(pilot, lambda: item_id in screen.transcript.item_ids, what="the reply in the transcript")
        assert "operator" in screen.transcript.text
        assert "Hi, this is Kim from support" in screen.transcript.text
        assert screen.transcript.item_ids.count(item_id) == 1  # the call's answer and the feed's event are one item
        assert not screen.query_one("#reply", Input).display


async def test_another_operators_conversation_cannot_be_taken_and_a_reply_into_it_is_refused() -> None:
    backend = backend_with_frank()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app)
        await backend.as_operator("op-sam").take_over(FRANK_THREAD)  # from another console
        await wait_for(pilot, lambda: handler_cell(app, FRANK) == "op-sam", what="the feed reports op-sam")
        screen = await open_conversation(pilot, app)
        assert "held by op-sam" in header(screen)

        await pilot.press("t")
        refused = "could not take over frank's conversation: op-sam is handling this conversation"
        await wait_for(pilot, lambda: refused in notices(app), what="the take-over refused")
        assert backend.handler(FRANK_THREAD).operator_id == "op-sam"

        await pilot.press("r")
        reply = screen.query_one("#reply", Input)
        assert "held by op-sam" in reply.placeholder
        await pilot.press(*keys_for("let me help"), "enter")
        message = "reply not sent: only the operator holding this conversation may write to it (op-sam holds it)"
        await wait_for(pilot, lambda: message in notices(app), what="the refusal")
        assert operator_replies(backend, FRANK_THREAD) == []  # nothing was written
        assert [i.id for i in backend.transcripts[FRANK_THREAD]] == ["msg_f1"]
        await wait_for(pilot, lambda: reply.display and reply.value == "let me help", what="the text given back")

        await pilot.press("escape", "escape", "b")  # close the box, the conversation; hand back from the table
        await wait_for(pilot, lambda: isinstance(app.screen, HandBackScreen), what="the hand-back prompt")
        await pilot.press("enter")
        refusal = (
            "could not hand back frank's conversation: op-sam is handling this conversation; only they can hand it back"
        )
        await wait_for(pilot, lambda: refusal in notices(app), what="the hand-back refused")
        assert handler_cell(app, FRANK) == "op-sam"


async def test_a_thread_handler_event_on_the_feed_updates_the_table_and_the_open_conversation() -> None:
    backend = InMemoryBackend()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app, rows=5)
        assert handler_cell(app, "ses_04") == "agent"
        dave = Handoff("thr_dave", "human", operator_id="op-lee", escalation_id="esc_09", since=NOW)
        await backend.thread_changes.put(handler_change("7-0", dave))
        await wait_for(pilot, lambda: handler_cell(app, "ses_04") == "op-lee", what="dave's row")

        await backend.thread_changes.put(handler_change("8-0", Handoff("thr_dave", "human", "op-kim", since=NOW)))
        await wait_for(pilot, lambda: handler_cell(app, "ses_04") == "you", what="the operator's own id reads you")

        app.dashboard.sessions_table.move_cursor(row=app.dashboard.sessions_table.get_row_index("ses_01"))
        screen = await open_conversation(pilot, app)
        assert "waiting for a person" in header(screen)
        alice = Handoff("thr_alice", "human", operator_id="op-lee", escalation_id="esc_01", since=NOW)
        await backend.thread_changes.put(handler_change("9-0", alice))
        await wait_for(pilot, lambda: "held by op-lee" in header(screen), what="the header")
        assert handler_cell(app, "ses_01") == "op-lee"

        # A feed event older than what the console knows (a late echo) changes nothing.
        stale = Handoff("thr_alice", "waiting", escalation_id="esc_01", since=ago(600))
        await backend.thread_changes.put(handler_change("10-0", stale))
        await backend.thread_changes.put(handler_change("11-0", Handoff("thr_dave", "agent", since=NOW)))
        await wait_for(pilot, lambda: handler_cell(app, "ses_04") == "agent", what="the events after it applied")
        assert "held by op-lee" in header(screen)
        assert handler_cell(app, "ses_01") == "op-lee"


async def test_the_users_messages_during_the_hand_off_are_marked_until_it_is_handed_back() -> None:
    backend = InMemoryBackend()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app, rows=5)
        app.dashboard.sessions_table.move_cursor(row=app.dashboard.sessions_table.get_row_index("ses_01"))
        screen = await open_conversation(pilot, app)
        # Alice asked for a person at ago(420); her messages before that are not marked.
        assert screen.transcript.marked_ids == []
        assert "new during hand-off" not in screen.transcript.text

        waiting = user_says("thr_alice", "msg_waiting", "hello? anyone there?", at=ago(60))
        await backend.thread_changes.put(
            ThreadChange(
                id="5-0",
                type="item.added",
                thread_id="thr_alice",
                item_id=waiting.id,
                at=NOW,
                json=waiting.model_dump_json().encode(),
            )
        )
        await wait_for(pilot, lambda: waiting.id in screen.transcript.item_ids, what="the user's new message")
        assert screen.transcript.marked_ids == ["msg_waiting"]
        assert screen.transcript.text.count("new during hand-off") == 1

        await pilot.press("t")  # taking over keeps the mark on what she wrote while she waited
        await wait_for(pilot, lambda: "held by you" in header(screen), what="taken over")
        assert screen.transcript.marked_ids == ["msg_waiting"]

        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, HandBackScreen), what="the hand-back prompt")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "answered by the agent" in header(screen), what="handed back")
        assert screen.transcript.marked_ids == []
        assert "new during hand-off" not in screen.transcript.text
        assert backend.escalations["esc_01"].status == "resolved"


async def test_claiming_from_the_queue_makes_the_operator_the_holder_and_b_there_hands_back() -> None:
    backend = InMemoryBackend()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app, rows=5)
        queue = app.dashboard.queue
        await pilot.press("2")
        assert queue.selected is not None and queue.selected.id == "esc_01"  # Alice's, the oldest
        await pilot.press("c")
        await wait_for(pilot, lambda: handler_cell(app, "ses_01") == "you", what="Alice's conversation held")
        held = backend.handler("thr_alice")
        assert (held.kind, held.operator_id, held.escalation_id) == ("human", "op-kim", "esc_01")
        await wait_for(pilot, lambda: queue.shown[0].claimed_by == "op-kim", what="the queue says who claimed it")

        await pilot.press("down", "c")  # Bob's: op-sam holds it
        await wait_for(pilot, lambda: any(n.startswith("could not claim: ") for n in notices(app)), what="refused")
        assert "could not claim: op-sam is handling this conversation" in notices(app)
        assert backend.handler("thr_bob").operator_id == "op-sam"

        await pilot.press("up", "b")
        await wait_for(pilot, lambda: isinstance(app.screen, HandBackScreen), what="the hand-back prompt")
        await pilot.press(*keys_for("refund issued"), "enter")
        await wait_for(pilot, lambda: [e.id for e in queue.shown] == ["esc_02"], what="Alice's escalation resolved")
        assert backend.escalations["esc_01"].resolution == "refund issued"
        assert handler_cell(app, "ses_01") == "agent"


async def test_an_unreachable_agent_runner_is_reported_and_its_connection_reset() -> None:
    backend = backend_with_frank()
    backend.fail_with = Unavailable("agent_runner is unavailable (connection refused)")
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app)
        await pilot.press("t")
        await wait_for(
            pilot,
            lambda: (
                "could not take over frank's conversation: agent_runner is unavailable (connection refused)"
                in notices(app)
            ),
        )
        assert backend.resets == [AGENT_RUNNER]
        assert handler_cell(app, FRANK) == "agent"


async def test_take_over_and_hand_back_are_in_the_command_palette() -> None:
    backend = backend_with_frank()
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await dashboard_ready(pilot, app)
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*keys_for("take over"))
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: backend.handler(FRANK_THREAD).operator_id == "op-kim", what="taken over")
        assert handler_cell(app, FRANK) == "you"
