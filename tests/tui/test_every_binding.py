"""Every key binding of the console, pressed through the pilot, with what it must do.

Each test drives one owner of bindings (the app, a screen, a widget) and ends by
checking it pressed every key that owner declares: a binding added without a
test here fails its owner's test. The deeper behaviour of the keys that act on
services (take over, claim, hand back, reply, approve) is proven against the
in-memory runner in test_handoff.py and test_action_cards.py and against real
services in test_live.py; here each key shows it reaches the right action.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from tests.tui.conftest import notices, wait_for
from tests.tui.fakes import InMemoryBackend, fixed_clock, with_runs
from tui.app import ConsoleApp
from tui.keys import _bindings
from tui.screens.conversation import ConversationScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.dialogs import ConfirmScreen, HandBackScreen, HelpScreen
from tui.screens.logs import LogScreen
from tui.widgets.escalation_queue import EscalationQueue
from tui.widgets.runs_table import RunsTable
from tui.widgets.sessions_table import SessionsTable
from tui.widgets.transcript import Transcript


def declared(owner: Any) -> set[str]:
    """Every key an owner binds (``"j,down"`` is two keys)."""
    return {key.strip() for binding in _bindings(owner) for key in binding.key.split(",")}


class Keys:
    """Presses keys for one owner and remembers which."""

    def __init__(self, pilot: Pilot[None], owner: Any) -> None:
        self.pilot = pilot
        self.owner = owner
        self.pressed: set[str] = set()

    async def press(self, key: str, then: Callable[[], object] | None = None, what: str = "") -> None:
        """Press ``key`` and wait until ``then()`` holds."""
        self.pressed.add(key)
        await self.pilot.press(key)
        if then is not None:
            await wait_for(self.pilot, then, what=what or f"after {key}")

    def all_pressed(self) -> None:
        """Every key of the owner was pressed."""
        assert self.pressed == declared(self.owner), declared(self.owner) - self.pressed


def _app(backend: InMemoryBackend | None = None) -> ConsoleApp:
    return ConsoleApp(backend or with_runs(InMemoryBackend()), clock=fixed_clock, metrics_interval=60)


async def _ready(pilot: Pilot[None], app: ConsoleApp) -> None:
    await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 7, what="the sessions")


def _selected(table: SessionsTable, session_id: str) -> Callable[[], bool]:
    return lambda: table.selected_session_id == session_id


def _tab(app: ConsoleApp) -> str:
    return app.dashboard.query_one(TabbedContent).active


async def test_the_apps_keys_help_log_and_quit() -> None:
    app = _app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot, app)
        keys = Keys(pilot, ConsoleApp)
        await keys.press("question_mark", lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await keys.press("L", lambda: isinstance(app.screen, LogScreen))
        await pilot.press("escape")
        await keys.press("q", lambda: not app.is_running, what="the console quits")
        keys.all_pressed()


async def test_the_main_screens_keys_switch_tabs_and_filter() -> None:
    app = _app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot, app)
        keys = Keys(pilot, DashboardScreen)
        await keys.press("2", lambda: _tab(app) == "escalations" and app.dashboard.queue.has_focus)
        await keys.press("3", lambda: _tab(app) == "metrics")
        await keys.press("4", lambda: _tab(app) == "runs" and app.dashboard.runs.has_focus)
        await keys.press("1", lambda: _tab(app) == "sessions" and app.dashboard.sessions_table.has_focus)
        field = app.dashboard.query_one("#filter", Input)
        await keys.press("slash", lambda: field.display and field.has_focus)
        await pilot.press("g", "u", "s")
        assert app.dashboard.sessions_table.shown_ids == ["ses_06"]
        await keys.press("escape", lambda: not field.display and len(app.dashboard.sessions_table.shown_ids) == 7)
        keys.all_pressed()


async def test_the_sessions_tables_keys() -> None:
    backend = with_runs(InMemoryBackend())
    app = _app(backend)
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, app)
        table = app.dashboard.sessions_table
        keys = Keys(pilot, SessionsTable)
        order = table.shown_ids
        moves = [("j", 1), ("down", 2), ("k", 1), ("up", 0), ("G", 6), ("g", 0), ("end", 6), ("home", 0)]
        moves += [("pagedown", 6), ("pageup", 0), ("ctrl+d", 6), ("ctrl+u", 0)]
        for key, index in moves:
            await keys.press(key, _selected(table, order[index]), what=key)
        await keys.press("f", lambda: table.status_filter == "active")
        await pilot.press("f", "f")
        await keys.press("s", lambda: table.sort_key == "activity")
        await keys.press("S", lambda: table.sort_reversed)
        await pilot.press("S", "s", "s", "s", "s", "g")  # back to newest first, and to the top: gus
        assert table.sort_key == "newest" and table.selected_session_id == "ses_06"  # answered by the agent
        await keys.press("t", lambda: backend.handler("thr_gus").operator_id == "op-kim", what="taken over")
        await keys.press("b", lambda: isinstance(app.screen, HandBackScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: backend.handler("thr_gus").kind == "agent", what="handed back")
        await keys.press("x", lambda: isinstance(app.screen, ConfirmScreen), what="asked to cancel gus's session")
        await pilot.press("n")
        assert backend.cancelled_sessions == []
        await keys.press("enter", lambda: isinstance(app.screen, ConversationScreen))
        assert isinstance(app.screen, ConversationScreen) and app.screen.thread_id == "thr_gus"
        keys.all_pressed()


async def test_the_escalation_queues_keys() -> None:
    backend = with_runs(InMemoryBackend())
    app = _app(backend)
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(pilot, app)
        await pilot.press("2")
        queue = app.dashboard.queue
        keys = Keys(pilot, EscalationQueue)
        await keys.press("j", lambda: queue.selected is not None and queue.selected.id == "esc_02")
        await keys.press("k", lambda: queue.selected is not None and queue.selected.id == "esc_01")
        await keys.press("G", lambda: queue.selected is not None and queue.selected.id == "esc_02")
        await keys.press("g", lambda: queue.selected is not None and queue.selected.id == "esc_01")
        await keys.press("c", lambda: backend.handler("thr_alice").operator_id == "op-kim", what="claimed")
        await keys.press("r", lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        reply = app.screen.query_one("#reply", Input)
        assert reply.display and reply.has_focus
        await pilot.press("escape", "escape")
        await keys.press("b", lambda: isinstance(app.screen, HandBackScreen))
        await pilot.press("escape")
        await keys.press("enter", lambda: isinstance(app.screen, ConversationScreen))
        keys.all_pressed()


async def test_the_runs_views_keys() -> None:
    backend = with_runs(InMemoryBackend())
    backend.cancel_allowed = True
    app = _app(backend)
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(pilot, app)
        await pilot.press("4")
        runs = app.dashboard.runs
        await wait_for(pilot, lambda: len(runs.shown) == 4, what="the runs")
        keys = Keys(pilot, RunsTable)
        await keys.press("j", lambda: runs.selected is not None and runs.selected.user_id == "hana")
        await keys.press("k", lambda: runs.selected is not None and runs.selected.user_id == "alice")
        await keys.press("G", lambda: runs.selected is not None and runs.selected.user_id == "gus")
        await keys.press("x", lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await keys.press("ctrl+k", lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.cancelled == ["run_gus"], what="cancelled")
        await keys.press("g", lambda: runs.selected is not None and runs.selected.user_id == "alice")
        await keys.press("enter", lambda: isinstance(app.screen, ConversationScreen))
        keys.all_pressed()


async def test_the_confirm_dialogs_keys() -> None:
    backend = with_runs(InMemoryBackend())
    backend.cancel_allowed = True
    app = _app(backend)
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(pilot, app)
        await pilot.press("4")
        await wait_for(pilot, lambda: len(app.dashboard.runs.shown) == 4, what="the runs")
        await pilot.press("G")
        keys = Keys(pilot, ConfirmScreen)
        for key in ("n", "escape"):
            await pilot.press("x")
            await keys.press(key, lambda: not isinstance(app.screen, ConfirmScreen))
        assert backend.cancelled == []
        await pilot.press("x")
        await keys.press("enter", lambda: backend.cancelled == ["run_gus"], what="cancelled by enter")
        await wait_for(pilot, lambda: len(app.dashboard.runs.shown) == 3, what="gus's run gone")
        await pilot.press("g", "j", "x")  # hana's paused answer
        await keys.press("y", lambda: backend.cancelled == ["run_gus", "run_hana"], what="cancelled by y")
        keys.all_pressed()


async def test_the_conversation_screens_keys() -> None:
    backend = with_runs(InMemoryBackend())
    backend.add_card("thr_alice", "card_1", task_id="7", at=fixed_clock())
    app = _app(backend)
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(pilot, app)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        keys = Keys(pilot, ConversationScreen)
        await keys.press("c", lambda: backend.handler("thr_alice").operator_id == "op-kim", what="claimed")
        await keys.press("t", lambda: any("you hold" in n for n in notices(app)), what="held (again)")
        await keys.press("r", lambda: screen.query_one("#reply", Input).has_focus)
        await pilot.press("h", "i", "enter")
        await wait_for(pilot, lambda: any(i.startswith("msg_op_") for i in screen.transcript.item_ids), what="reply")
        await keys.press("slash", lambda: screen.query_one("#search", Input).has_focus)
        await keys.press("escape", lambda: screen.transcript.has_focus)
        await keys.press("a", lambda: backend.decisions == [("thr_alice", "card_1", True)], what="approved")
        backend.add_card("thr_alice", "card_2", task_id="8", at=fixed_clock())
        await keys.press("ctrl+r", lambda: screen.transcript.pending_card() is not None, what="reloaded")
        await keys.press("d", lambda: backend.decisions[-1] == ("thr_alice", "card_2", False), what="rejected")
        await keys.press("b", lambda: isinstance(app.screen, HandBackScreen))
        await pilot.press("escape")
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        keys.all_pressed()


async def test_the_transcripts_keys() -> None:
    app = _app()
    async with app.run_test(size=(120, 30)) as pilot:
        await _ready(pilot, app)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        transcript = screen.transcript
        keys = Keys(pilot, Transcript)
        await keys.press("k", lambda: transcript.selected_id == "msg_3")
        await keys.press("g", lambda: transcript.selected_id == "msg_1")
        await keys.press("j", lambda: transcript.selected_id == "task_1")
        await keys.press("y", lambda: "order 1042" in app.clipboard)
        assert transcript.search("charge") == 3  # msg_1, task_1, msg_2
        await keys.press("n", lambda: transcript.selected_id == "msg_1")  # the next older match
        await keys.press("N", lambda: transcript.selected_id == "task_1")  # back to the newer one
        await keys.press("G", lambda: transcript.selected_id is None)
        keys.all_pressed()


async def test_the_log_panels_keys() -> None:
    app = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(pilot, app)
        for n in range(60):
            logging.getLogger("tui.test").warning("record %d", n)
        await pilot.press("L")
        screen = app.screen
        assert isinstance(screen, LogScreen)
        await wait_for(pilot, lambda: len(screen.lines) >= 60, what="the records")
        log = screen.query_one("RichLog")
        keys = Keys(pilot, LogScreen)
        await keys.press("g", lambda: log.scroll_y == 0)
        await keys.press("j", lambda: log.scroll_y == 1)
        await keys.press("k", lambda: log.scroll_y == 0)
        await keys.press("G", lambda: log.scroll_y == log.max_scroll_y)
        await keys.press("L", lambda: not isinstance(app.screen, LogScreen))
        await pilot.press("L")
        await keys.press("escape", lambda: not isinstance(app.screen, LogScreen))
        keys.all_pressed()


async def test_the_help_and_hand_back_dialogs_keys() -> None:
    app = _app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot, app)
        keys = Keys(pilot, HelpScreen)
        for key in ("escape", "question_mark", "q"):
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await keys.press(key, lambda: not isinstance(app.screen, HelpScreen))
        assert app.is_running  # q closes the help, it does not quit
        keys.all_pressed()
        await pilot.press("2", "b")
        assert isinstance(app.screen, HandBackScreen)
        keys = Keys(pilot, HandBackScreen)
        await keys.press("escape", lambda: not isinstance(app.screen, HandBackScreen))
        keys.all_pressed()
