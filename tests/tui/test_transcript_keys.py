"""The transcript and the keys around it: Markdown rendered, items selected with j/k/g/G and copied with y,
/ searches with n/N, toasts never cover an input, the palette lists the console's own commands."""

from __future__ import annotations

from datetime import timedelta

from chatkit.types import AssistantMessageContent, AssistantMessageItem
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input
from textual.widgets._toast import Toast

from tests.tui.conftest import wait_for
from tests.tui.fakes import NOW, InMemoryBackend, ago, fixed_clock, user_says
from tests.tui.test_live import keys_for
from tui.app import ConsoleApp
from tui.keys import KeyBindingsProvider, SessionsProvider
from tui.screens.conversation import ConversationScreen
from tui.widgets.transcript import FIRST_PAINT_ITEMS


def _backend() -> InMemoryBackend:
    backend = InMemoryBackend()
    backend.transcripts["thr_alice"].append(
        AssistantMessageItem(
            id="msg_md",
            thread_id="thr_alice",
            created_at=ago(1228),
            content=[AssistantMessageContent(text="I can **add** a note:\n\n- first\n- second\n\nSee `refund`.")],
        )
    )
    return backend


async def _open_alice(pilot: Pilot[None], app: ConsoleApp) -> ConversationScreen:
    await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 5, what="the sessions")
    await pilot.press("2", "enter")  # the queue's first escalation is Alice's
    await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
    screen = app.screen
    assert isinstance(screen, ConversationScreen)
    return screen


async def test_agent_messages_are_rendered_as_markdown_and_user_messages_as_typed() -> None:
    app = ConsoleApp(_backend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _open_alice(pilot, app)
        text = screen.transcript.text
        assert "I can add a note:" in text and "**add**" not in text
        assert "• first" in text and "`refund`" not in text
        assert "Hi, I was charged twice for order 1042." in text


async def test_j_k_g_select_items_y_copies_the_selected_message_and_G_follows_the_end() -> None:
    app = ConsoleApp(_backend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _open_alice(pilot, app)
        transcript = screen.transcript
        assert transcript.selected_id is None
        await pilot.press("k")
        assert transcript.selected_id == "msg_3"  # from the end: the newest item
        await pilot.press("k", "k")
        assert transcript.selected_id == "msg_md"
        await pilot.press("y")
        assert app.clipboard == "I can **add** a note:\n\n- first\n- second\n\nSee `refund`."  # the message as written
        await pilot.press("g")
        assert transcript.selected_id == "msg_1"
        await pilot.press("j")
        assert transcript.selected_id == "task_1"
        await pilot.press("y")
        assert "order 1042: 2 charges" in app.clipboard  # a tool call copies what the console shows of it
        await pilot.press("G")
        assert transcript.selected_id is None


async def test_slash_searches_upward_from_the_end_and_n_N_move_between_matches() -> None:
    backend = _backend()
    backend.transcripts["thr_alice"].append(user_says("thr_alice", "msg_4", "the refund, please", at=ago(60)))
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _open_alice(pilot, app)
        transcript = screen.transcript
        await pilot.press("slash")
        search = screen.query_one("#search", Input)
        assert search.display and search.has_focus
        await pilot.press(*keys_for("refund"), "enter")
        assert not search.display and transcript.has_focus
        assert transcript.matches == ["msg_2", "msg_md", "task_2", "msg_4"]
        assert transcript.selected_id == "msg_4"  # the newest match first
        await pilot.press("n")
        assert transcript.selected_id == "task_2"
        await pilot.press("n", "n")
        assert transcript.selected_id == "msg_2"
        await pilot.press("n")
        assert transcript.selected_id == "msg_4"  # past the oldest it wraps around, as vim does
        await pilot.press("N")
        assert transcript.selected_id == "msg_2"


async def test_a_long_transcript_opens_at_its_end_and_renders_its_older_items_in_the_background() -> None:
    backend = InMemoryBackend()
    backend.transcripts["thr_alice"] = [
        user_says("thr_alice", f"msg_{i:04d}", f"message number {i}", at=NOW - timedelta(seconds=1000 - i))
        for i in range(FIRST_PAINT_ITEMS * 3)
    ]
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_alice(pilot, app)
        transcript = screen.transcript
        await wait_for(pilot, lambda: transcript.fully_rendered, what="the older items")
        assert transcript.scroll_y == transcript.max_scroll_y  # still at the end, where it opened
        assert f"message number {FIRST_PAINT_ITEMS * 3 - 1}" in transcript.text
        assert "message number 0" in transcript.text


async def test_toasts_never_cover_the_reply_box_the_filter_or_the_hand_back_note() -> None:
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 5, what="the sessions")
        await pilot.press("slash")
        for n in range(6):
            app.notify(f"notice {n}: something the operator should read, long enough to wrap onto a second line")
        await pilot.pause(0.2)
        _assert_clear(app, app.dashboard.query_one("#filter", Input))
        await pilot.press("escape", "2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
        await pilot.press("r")
        for n in range(6):
            app.notify(f"reply notice {n}: something the operator should read while typing a reply to the user")
        await pilot.pause(0.2)
        _assert_clear(app, app.screen.query_one("#reply", Input))
        await pilot.press("escape", "b")  # the hand-back dialog's note
        for n in range(6):
            app.notify(f"hand-back notice {n}: something the operator should read while writing the note")
        await pilot.pause(0.2)
        _assert_clear(app, app.screen.query_one("#resolution", Input))


def _assert_clear(app: ConsoleApp, box: Input) -> None:
    """Every cell of the box shows the box (not a toast), and the toasts are on screen."""
    screen = app.screen
    assert box.display and box.region.area
    shown = {type(screen.get_widget_at(x, y)[0]) for x in range(screen.size.width) for y in range(screen.size.height)}
    assert Toast in shown, "the notices are shown"
    region = box.region
    for y in range(region.y, region.bottom):
        for x in range(region.x, region.right):
            widget, _ = screen.get_widget_at(x, y)
            assert not isinstance(widget, Toast), f"a toast covers the input at {x},{y}"


async def test_the_palette_lists_the_consoles_commands_and_not_cursor_moves_or_themes() -> None:
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 5, what="the sessions")
        provider = KeyBindingsProvider(app.screen)
        names = [name for name, _help, _run in provider._commands()]
        for wanted in ("Take over (t)", "Sort (s)", "Log (L)", "Help (?)", "Quit (q)", "Filter (/)"):
            assert wanted in names, names
        for unwanted in ("Down", "Up", "Top", "Bottom", "Page down", "Cursor up", "Scroll Up"):
            assert not any(name.startswith(f"{unwanted} (") for name in names), names
        assert {KeyBindingsProvider, SessionsProvider} == app.COMMANDS  # no system commands (themes, screenshots)
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*keys_for("theme"))
        await pilot.pause(0.3)
        assert "theme" not in str(app.screen.query_one("CommandList").render()).lower()


async def test_the_palette_opens_a_conversation_by_its_title() -> None:
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 5, what="the sessions")
        await pilot.press("ctrl+p", *keys_for("declined"))
        await pilot.pause(0.4)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen), what="the conversation opens")
        assert isinstance(app.screen, ConversationScreen) and app.screen.thread_id == "thr_bob"


async def test_the_conversation_header_waiting_time_ticks() -> None:
    now = [NOW]
    app = ConsoleApp(InMemoryBackend(), clock=lambda: now[0], metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await _open_alice(pilot, app)
        header = screen.query_one("#conversation-info")
        assert "waiting 7m00s" in str(header.render())
        now[0] = NOW + timedelta(seconds=3)
        await wait_for(pilot, lambda: "waiting 7m03s" in str(header.render()), what="the header ticks")


async def test_j_k_g_G_move_in_the_escalation_queue() -> None:
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.dashboard.queue.shown) == 2, what="the queue")
        await pilot.press("2")
        queue = app.dashboard.queue
        assert queue.selected is not None and queue.selected.id == "esc_01"
        await pilot.press("j")
        assert queue.selected is not None and queue.selected.id == "esc_02"
        await pilot.press("k")
        assert queue.selected is not None and queue.selected.id == "esc_01"
        await pilot.press("G")
        assert queue.selected is not None and queue.selected.id == "esc_02"
        await pilot.press("g")
        assert queue.selected is not None and queue.selected.id == "esc_01"


async def test_j_k_g_G_move_in_the_sessions_table_and_enter_opens_the_highlighted_one() -> None:
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 5, what="the sessions")
        table = app.dashboard.sessions_table
        assert table.selected_session_id == "ses_03"
        await pilot.press("j", "j")
        assert table.selected_session_id == "ses_01"
        await pilot.press("k")
        assert table.selected_session_id == "ses_02"
        await pilot.press("G")
        assert table.selected_session_id == "ses_05"
        await pilot.press("g")
        assert table.selected_session_id == "ses_03"
        await pilot.press("j", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen), what="the conversation")
        assert isinstance(app.screen, ConversationScreen) and app.screen.session_id == "ses_02"


async def test_a_click_highlights_a_session_and_a_second_click_opens_it() -> None:
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 5, what="the sessions")
        table = app.dashboard.sessions_table
        await pilot.click(table, offset=(3, 3))  # the header, then carol, bob, alice
        assert table.selected_session_id == "ses_01"
        await pilot.click(table, offset=(3, 3))
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen), what="the conversation")
        assert isinstance(app.screen, ConversationScreen) and app.screen.session_id == "ses_01"


async def test_each_item_shows_its_time_and_items_of_another_day_their_date() -> None:
    backend = InMemoryBackend()
    backend.transcripts["thr_alice"].insert(
        0, user_says("thr_alice", "msg_0", "I wrote two days ago", at=NOW - timedelta(days=2))
    )
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _open_alice(pilot, app)
        lines = screen.transcript.text.splitlines()
        assert "Mar 12 15:09:26 user" in lines  # another day: with its date (UTC)
        assert "15:02:16 user" in lines  # today: the time only


async def test_opening_the_reply_box_keeps_the_end_of_the_transcript_in_view() -> None:
    backend = InMemoryBackend()
    for i in range(20):
        backend.transcripts["thr_alice"].append(user_says("thr_alice", f"msg_x{i:02d}", f"line {i}", at=ago(300 - i)))
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_alice(pilot, app)
        transcript = screen.transcript
        await wait_for(pilot, lambda: transcript.scroll_y == transcript.max_scroll_y > 0, what="at the end")
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.query_one("#reply", Input).has_focus, what="the reply box")
        await pilot.pause()
        assert transcript.scroll_y == transcript.max_scroll_y  # the newest message is not hidden by the box
